"""pixelpool: the Chalice app. Wiring only — routes, handlers and steps live in chalicelib."""
from chalice import Chalice

from chalicelib.api import (
    annotations,
    auth,
    explore,
    exports,
    jobs,
    operations,
    pool,
    projects,
    saved_filters,
    share,
    shared_images,
    system,
    tags,
    tasks,
)
from chalicelib.api.observability import observe
from chalicelib.events import ingest
from chalicelib.steps import exports as export_steps
from chalicelib.steps import indexing, selfcheck

app = Chalice(app_name="pixelpool")
app.register_middleware(observe, "all")

app.register_blueprint(auth.bp)
app.register_blueprint(system.bp)
app.register_blueprint(tags.bp)
app.register_blueprint(share.bp)
app.register_blueprint(shared_images.bp)
app.register_blueprint(operations.bp)
app.register_blueprint(projects.bp)
app.register_blueprint(pool.bp)
app.register_blueprint(explore.bp)
app.register_blueprint(saved_filters.bp)
app.register_blueprint(tasks.bp)
app.register_blueprint(jobs.bp)
app.register_blueprint(annotations.bp)
app.register_blueprint(exports.bp)
app.register_blueprint(selfcheck.bp)
app.register_blueprint(indexing.bp)
app.register_blueprint(export_steps.bp)
app.register_blueprint(ingest.bp)
