"""pixelpool: the Chalice app. Wiring only — routes, handlers and steps live in chalicelib."""
from chalice import Chalice

from chalicelib.api import auth, system, tags
from chalicelib.events import ingest
from chalicelib.api.observability import observe
from chalicelib.steps import selfcheck

app = Chalice(app_name="pixelpool")
app.register_middleware(observe, "all")

app.register_blueprint(auth.bp)
app.register_blueprint(system.bp)
app.register_blueprint(tags.bp)
app.register_blueprint(selfcheck.bp)
app.register_blueprint(ingest.bp)
