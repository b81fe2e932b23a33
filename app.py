"""pixelpool: the Chalice app. Wiring only — routes, handlers and steps live in chalicelib."""
import gc

# Init makes a few hundred thousand long-lived objects (modules, botocore's service models, schema
# classes) and next to no garbage. The cyclic collector stays off while they are made (its full
# passes over them cost ~60 ms of every cold start, bench/bench_cold_start.py) and then they are
# moved out of its view (`gc.freeze`), so no later request's full pass walks them either.
gc.disable()

from chalice import Chalice  # noqa: E402

from chalicelib.api import (  # noqa: E402
    analyses,
    annotations,
    auth,
    comments,
    datasets,
    explore,
    exports,
    jobs,
    operations,
    pool,
    projects,
    promotions,
    saved_filters,
    share,
    shared_images,
    split_leaks,
    system,
    tags,
    tasks,
)
from chalicelib.api.observability import observe  # noqa: E402
from chalicelib.api.responses import enveloped_framework_errors  # noqa: E402
from chalicelib.events import compaction, ingest  # noqa: E402
from chalicelib.steps import exports as export_steps  # noqa: E402
from chalicelib.steps import imports as import_steps  # noqa: E402
from chalicelib.steps import deletions as deletion_steps  # noqa: E402
from chalicelib.steps import indexing, selfcheck  # noqa: E402

app = Chalice(app_name="pixelpool")
app.register_middleware(observe, "all")
app.register_middleware(enveloped_framework_errors, "http")

app.register_blueprint(auth.bp)
app.register_blueprint(system.bp)
app.register_blueprint(tags.bp)
app.register_blueprint(datasets.bp)
app.register_blueprint(share.bp)
app.register_blueprint(shared_images.bp)
app.register_blueprint(operations.bp)
app.register_blueprint(projects.bp)
app.register_blueprint(pool.bp)
app.register_blueprint(explore.bp)
app.register_blueprint(saved_filters.bp)
app.register_blueprint(comments.bp)
app.register_blueprint(tasks.bp)
app.register_blueprint(jobs.bp)
app.register_blueprint(annotations.bp)
app.register_blueprint(promotions.bp)
app.register_blueprint(exports.bp)
app.register_blueprint(split_leaks.bp)
app.register_blueprint(analyses.bp)
app.register_blueprint(selfcheck.bp)
app.register_blueprint(indexing.bp)
app.register_blueprint(export_steps.bp)
app.register_blueprint(import_steps.bp)
app.register_blueprint(deletion_steps.bp)
app.register_blueprint(ingest.bp)
app.register_blueprint(compaction.bp)

gc.freeze()
gc.enable()
