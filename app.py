"""Lending API: assembles the blueprints and middleware; no logic lives here."""
import logging

from chalice import Chalice

from chalicelib.auth import routes as auth_routes  # first: registers authenticators/authorizers
from chalicelib import wiring
from chalicelib.adapters import testclock
from chalicelib.api import system
from chalicelib.core import config
from chalicelib.api.http import http_middleware
from chalicelib.ledger import routes as ledger_routes
from chalicelib.loans import routes as loans_routes
from chalicelib.repay import routes as repay_routes
from chalicelib.risk import routes as risk_routes

app = Chalice(app_name="lending", configure_logs=False)
# Chalice pins its logger to ERROR when debug is off; Powertools logs through the logger named
# after the service ("lending"), so chalice gets a child logger of its own.
app.log = logging.getLogger("lending.chalice")
app.debug = False  # never a stack trace in a response

app.register_middleware(http_middleware, "http")

app.register_blueprint(system.bp)
app.register_blueprint(auth_routes.bp)
app.register_blueprint(loans_routes.bp)
app.register_blueprint(repay_routes.bp)
app.register_blueprint(risk_routes.bp)
app.register_blueprint(ledger_routes.bp)
if config.is_local():  # the local stack's test clock; deployed stages have no such route
    app.register_blueprint(testclock.blueprint(lambda: wiring.clock().now()))
