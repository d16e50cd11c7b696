"""Lending API: assembles the blueprints and middleware; no logic lives here."""
from chalice import Chalice

from chalicelib.core.http import http_middleware
from chalicelib.core import system
from chalicelib.loans import routes as loans_routes
from chalicelib.repay import routes as repay_routes

app = Chalice(app_name="lending")
app.debug = False  # never a stack trace in a response

app.register_middleware(http_middleware, "http")

app.register_blueprint(system.bp)
app.register_blueprint(loans_routes.bp)
app.register_blueprint(repay_routes.bp)
