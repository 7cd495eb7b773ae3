"""The platform's web application (FastAPI, pages rendered on the server with Jinja2).

Who may see what is decided in one place: :func:`view` turns the request's session into a
:class:`portal.scope.Scope` and hands the route a :class:`portal.data.View` bound to it; a route has
no other way to data. Every form carries a token bound to the session (before login: a cookie of its
own, double submit) and :func:`csrf_protect`, a dependency of the whole application, refuses any POST
without the right one. An error reaches the browser as a page with an error id, never a stack trace:
the detail goes to the log under that id.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Undefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.db import current_revision, head_revision, make_engine
from ledger.registry_live import LiveRegistry
from park.registry import Registry, load_registry
from park.store import InfluxStore
from portal import auth, consent, offers, publication, registry_edit, workflow
from portal.audit import Actor, record
from portal.cache import ResultsCache
from portal.config import PlatformConfig
from portal.data import SCOPES, Backend, View
from portal.results_view import ResultsView
from portal.schema import BANK_ROLE
from portal.scope import ROLE_NAMES, ForbiddenError, NotFoundError, Scope, home_of
from reports import credit
from reports.svg import bar_chart
from scoring.policy import load_policy

LOG = logging.getLogger("parkcarbon.platform")
HERE = Path(__file__).parent
SESSION_COOKIE = "pc_session"
LOGIN_CSRF_COOKIE = "pc_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
]
PRIVATE = (b"cache-control", b"no-store")  # pages and data: never kept by a browser or a proxy
PUBLIC = (b"cache-control", b"public, max-age=86400")  # /static/: the stylesheet, scripts and ECharts


class LoginRequiredError(Exception):
    """No live session: the browser is sent to the login page."""


class CsrfRefusedError(Exception):
    """A form without its token, or with another's."""


class SecurityHeaders:
    """Adds the headers of :data:`HEADERS` to every response (pure ASGI, so errors' pages get them too)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        cache = PUBLIC if scope["path"].startswith("/static/") else PRIVATE

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS, cache]
            await send(message)

        await self.app(scope, receive, with_headers)


def _view(request: Request) -> View:
    """The one way a route reaches data: a View bound to the scope of the request's session."""
    make: Callable[[Request], View] = request.app.state.view_of
    return make(request)


Scoped = Annotated[View, Depends(_view)]


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _num(value: object, digits: int = 1) -> str:
    """A figure with thousands separators; "–" for what is missing (None, NaN, a field not written)."""
    if isinstance(value, Undefined):
        return "–"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return f"{number:,.{digits}f}" if math.isfinite(number) else "–"


def _when(value: object) -> str:
    """A time of the database as the pages show it: UTC to the second; "–" for none."""
    if not isinstance(value, datetime):
        return "–"
    at = value if value.tzinfo is None else value.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _records_of(frame: Any) -> list[dict[str, Any]]:
    """Holdings as the pages show them: vintage and amount [t]."""
    return [{"vintage": int(r["vintage"]), "amount_t": float(r["amount_t"])} for r in frame.to_dict("records")]


def create_app(config: PlatformConfig, store: InfluxStore | None = None) -> FastAPI:
    """The application on ``config``'s database (migrated to the newest revision: ``parkcarbon platform
    serve`` migrates it first), InfluxDB and run directory."""
    writer = make_engine(config.ledger_url)
    if current_revision(writer) != head_revision():
        writer.dispose()
        raise RuntimeError("the platform's database is not at the newest schema: run `parkcarbon platform migrate`")
    reader = make_engine(config.ledger_url, read_only=True)
    file_registry = load_registry(config.registry)
    live = LiveRegistry(reader, file_registry) if config.registry_source == "database" else None

    def registry_now() -> Registry:
        """The registry a request reads: the file's, or the database's as of today, read again whenever it
        changed (ledger/registry_live.py): a change made on the platform shows on the next request."""
        return live.current() if live is not None else file_registry

    registry = registry_now()  # the park's timezone and name, as at start
    backend = Backend(
        store=store or InfluxStore(config.influx),
        reader=reader,
        writer=writer,
        reports_dir=config.reports_dir,
        security=config.security,
        timezone=registry.park.timezone,
        results=ResultsCache(config.security.results_ttl_s),
        # what the platform books (offers accepted, surrenders) is held to the policy's banking validity,
        # as every ledger command is
        credit_validity_years=load_policy(config.policy).credit_validity_years,
    )
    security = config.security
    lifetime = security.session_lifetime
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["num"] = _num
    templates.env.filters["when"] = _when
    templates.env.globals.update(role_names=ROLE_NAMES, scopes=SCOPES, park_name=registry.park.name)

    # -- sessions, CSRF, scope --------------------------------------------------------------------------

    def session_of(request: Request) -> auth.Session | None:
        if not hasattr(request.state, "session"):
            token = request.cookies.get(SESSION_COOKIE, "")
            found = None
            if token:
                with reader.connect() as conn:
                    found = auth.session_for(conn, token)
            request.state.session = found
        session: auth.Session | None = request.state.session
        return session

    async def csrf_protect(request: Request) -> None:
        """Every POST (PUT, PATCH, DELETE) carries the form token of its session, or before login the one
        of the login page's cookie; anything else is refused with 403."""
        if request.method not in UNSAFE:
            return
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            value = (await request.form()).get(CSRF_FIELD, "")
            sent = value if isinstance(value, str) else ""
        session = session_of(request)
        expected = session.csrf_token if session is not None else request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise CsrfRefusedError()

    def actor_of(request: Request, session: auth.Session) -> Actor:
        return Actor(session.user.username, session.user.role, session.user.enterprise_id, _client(request))

    def scope_of(user: auth.User) -> Scope:
        bank_id = None
        if user.role == BANK_ROLE:  # its bank, read afresh: a user moved or removed sees nothing more
            with reader.connect() as conn:
                bank_id = consent.bank_of(conn, user.id)
        return Scope.of(user.username, user.role, user.enterprise_id, registry_now(), bank_id)

    def view(request: Request) -> View:
        session = session_of(request)
        if session is None:
            raise LoginRequiredError()
        return View(backend, scope_of(session.user), actor_of(request, session))

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        session = session_of(request)
        context = {
            "user": session.user if session else None,
            "csrf": session.csrf_token if session else "",
            "home": home_of(session.user.role, session.user.enterprise_id) if session else "/login",
            **context,
        }
        return templates.TemplateResponse(request, name, context, status_code=status)

    def secure(request: Request) -> bool:
        if security.cookie_secure == "auto":
            return request.url.scheme == "https"
        return security.cookie_secure == "always"

    def set_session_cookie(request: Request, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=secure(request),
            path="/",
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        backend.store.close()
        reader.dispose()
        writer.dispose()

    app = FastAPI(
        title="parkcarbon platform",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(csrf_protect)],
        lifespan=lifespan,
    )
    app.state.backend = backend
    app.state.view_of = view
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # -- errors -----------------------------------------------------------------------------------------

    def error_page(request: Request, status: int, title: str, text: str, error_id: str = "") -> HTMLResponse:
        try:
            return page(
                request, "error.html", {"status": status, "title": title, "text": text, "error_id": error_id}, status
            )
        except Exception:  # the error page itself failed: a page without anything that could fail
            LOG.exception("error page failed")
            body = f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{error_id}</p>"
            return HTMLResponse(body, status_code=status)

    @app.exception_handler(LoginRequiredError)
    async def _login_required(request: Request, _exc: LoginRequiredError) -> Response:
        if request.url.path.endswith(".json"):
            return JSONResponse({"error": "login required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(CsrfRefusedError)
    async def _csrf(request: Request, _exc: CsrfRefusedError) -> Response:
        LOG.warning(
            "form without a valid CSRF token refused: %s %s from %s", request.method, request.url.path, _client(request)
        )
        return error_page(
            request, 403, "表单已失效 Form refused", "The form had no valid token. Reload the page and try again."
        )

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, _exc: NotFoundError) -> Response:
        return error_page(request, 404, "未找到 Not found", "There is nothing here that you may see.")

    @app.exception_handler(ForbiddenError)
    async def _forbidden(request: Request, _exc: ForbiddenError) -> Response:
        return error_page(request, 403, "无权限 Not allowed", "Your role does not allow this.")

    @app.exception_handler(workflow.IllegalTransitionError)
    async def _conflict(request: Request, exc: workflow.IllegalTransitionError) -> Response:
        return error_page(request, 409, "状态不允许 Not allowed now", str(exc))

    @app.exception_handler(offers.LedgerRefusedError)
    async def _ledger_refused(request: Request, exc: offers.LedgerRefusedError) -> Response:
        return error_page(request, 409, "账簿拒绝 Refused by the ledger", str(exc))

    @app.exception_handler(workflow.InvalidInputError)
    async def _invalid_input(request: Request, exc: workflow.InvalidInputError) -> Response:
        return error_page(request, 400, "未完成 Refused", str(exc))

    @app.exception_handler(auth.AuthError)
    async def _refused(request: Request, exc: auth.AuthError) -> Response:
        return error_page(request, 400, "未完成 Refused", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "未找到 Not found", 405: "Method not allowed"}
        return error_page(request, exc.status_code, titles.get(exc.status_code, str(exc.status_code)), "")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _exc: RequestValidationError) -> Response:
        return error_page(request, 400, "请求有误 Bad request", "A field or parameter of the request is not valid.")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        error_id = secrets.token_hex(6)
        LOG.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
        return error_page(
            request, 500, "出错了 Something went wrong", "The error was logged; tell the park office its id.", error_id
        )

    # -- login ------------------------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        if session_of(request) is not None:
            return RedirectResponse("/", status_code=303)
        return _login_page(request, "", 200)

    def _login_page(request: Request, message: str, status: int) -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = page(request, "login.html", {"login_csrf": token, "message": message}, status)
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure(request), path="/login"
        )
        return response

    @app.post("/login", response_class=HTMLResponse)
    def login(request: Request, username: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
        with writer.begin() as conn:
            result = auth.login(
                conn,
                username,
                password,
                _client(request),
                security.max_failures,
                security.lockout,
                lifetime,
            )
        if result.user is None:
            if result.locked:
                return _login_page(request, "登录已暂时锁定 Too many wrong passwords: try again later.", 429)
            return _login_page(request, "用户名或密码错误 Wrong user name or password.", 401)
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(request, response, result.token)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @app.post("/logout")
    def logout(request: Request) -> Response:
        session = session_of(request)
        if session is not None:
            with writer.begin() as conn:
                auth.close_session(conn, session.token_sha256)
                record(
                    conn, actor_of(request, session), "logout", f"user:{session.user.username}", "", "session closed"
                )
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/")
    def home(v: Scoped) -> Response:
        return RedirectResponse(v.scope.home, status_code=303)

    @app.get("/account/password", response_class=HTMLResponse)
    def password_form(request: Request, v: Scoped) -> Response:
        return page(request, "password.html", {"message": ""})

    @app.post("/account/password", response_class=HTMLResponse)
    def change_password(
        request: Request,
        v: Scoped,
        current: Annotated[str, Form()],
        new: Annotated[str, Form()],
        repeat: Annotated[str, Form()],
    ) -> Response:
        session = session_of(request)
        assert session is not None
        if new != repeat:
            return page(request, "password.html", {"message": "两次输入不一致 The new passwords differ."}, 400)
        with writer.begin() as conn:
            user = auth.user_by_id(conn, session.user.id)
            assert user is not None
            if not auth.verify_password(conn, user, current):
                record(conn, v.actor, "user.password", f"user:{user.username}", "", "refused: wrong current password")
                ok = False
            else:
                auth.set_password(conn, user, new, v.actor)
                changed = auth.user_by_id(conn, user.id)
                assert changed is not None
                token, _csrf = auth.open_session(conn, changed, _client(request), datetime.now(UTC), lifetime)
                ok = True
        if not ok:
            return page(request, "password.html", {"message": "当前密码错误 The current password is wrong."}, 400)
        response = RedirectResponse(v.scope.home, status_code=303)
        set_session_cookie(request, response, token)
        return response

    # -- the enterprise ---------------------------------------------------------------------------------

    @app.get("/enterprises/{enterprise_id}", response_class=HTMLResponse)
    def enterprise_page(request: Request, v: Scoped, enterprise_id: str, period: str | None = None) -> Response:
        data = v.enterprise_month(enterprise_id, period)
        trend = data.trend
        charts = []
        if trend["periods"]:
            series = {
                name: [x if x is not None else math.nan for x in trend["series"][f"{scope}_tco2_location"]]
                for scope, name in SCOPES[:2]
            }
            charts.append(
                bar_chart(f"{enterprise_id} 排放 emissions by month (location-based)", trend["periods"], series, "tCO2")
            )
            credits = [x if x is not None else math.nan for x in trend["series"]["credits_ytd_tco2"]]
            charts.append(
                bar_chart(
                    f"{enterprise_id} 累计碳积分 credits year to date",
                    trend["periods"],
                    {"credits YTD": credits},
                    "tCO2",
                )
            )
        return page(request, "enterprise.html", {"e": data, "charts": charts, "scope": v.scope})

    @app.get("/enterprises/{enterprise_id}/charts/trend.json")
    def enterprise_trend(v: Scoped, enterprise_id: str, year: int | None = None) -> dict[str, Any]:
        return v.trend(enterprise_id, year)

    @app.get("/enterprises/{enterprise_id}/holdings.json")
    def enterprise_holdings(v: Scoped, enterprise_id: str) -> dict[str, Any]:
        frame = v.holdings(enterprise_id)
        return {
            "enterprise": enterprise_id,
            "holdings": [
                {"vintage": int(r["vintage"]), "amount_t": float(r["amount_t"])} for r in frame.to_dict("records")
            ],
        }

    @app.get("/enterprises/{enterprise_id}/statement.{kind}")
    def enterprise_statement(v: Scoped, enterprise_id: str, kind: str, year: int | None = None) -> Response:
        content, name = v.statement_file(enterprise_id, year, kind)
        media = (
            "text/csv; charset=utf-8"
            if kind == "csv"
            else ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        )
        return Response(
            content, media_type=media, headers={"content-disposition": f"attachment; filename={quote(name)}"}
        )

    @app.get("/enterprises/{enterprise_id}/reports/{period}.html")
    def enterprise_report(v: Scoped, enterprise_id: str, period: str) -> Response:
        content, name = v.report_file(enterprise_id, period)
        return Response(
            content,
            media_type="text/html; charset=utf-8",
            headers={"content-disposition": f"attachment; filename={quote(name)}"},
        )

    # -- data requests and submissions (maker/checker, portal/workflow.py) -------------------------------

    @app.get("/enterprises/{enterprise_id}/requests", response_class=HTMLResponse)
    def enterprise_requests(request: Request, v: Scoped, enterprise_id: str) -> Response:
        return page(
            request,
            "requests.html",
            {
                "enterprise": v.scope.enterprise(enterprise_id),
                "requests": v.data_requests(enterprise_id),
                "today": v.today(),
                "kinds": workflow.KIND_NAMES,
                "may_open": v.scope.role in workflow.PARK_OFFICE,
            },
        )

    @app.post("/enterprises/{enterprise_id}/requests")
    def enterprise_request_open(
        v: Scoped,
        enterprise_id: str,
        item: Annotated[str, Form()] = "",
        period_asked: Annotated[str, Form()] = "",
        due_on: Annotated[str, Form()] = "",
        note: Annotated[str, Form()] = "",
    ) -> Response:
        request_id = v.open_request(enterprise_id, item, period_asked, due_on, note)
        return RedirectResponse(f"/enterprises/{enterprise_id}/requests/{request_id}", status_code=303)

    @app.get("/enterprises/{enterprise_id}/requests/{request_id}", response_class=HTMLResponse)
    def enterprise_request(request: Request, v: Scoped, enterprise_id: str, request_id: int) -> Response:
        found = v.data_request(enterprise_id, request_id)
        return page(
            request,
            "request.html",
            {
                "enterprise": v.scope.enterprise(enterprise_id),
                "r": found,
                "today": v.today(),
                "may_submit": v.scope.role in workflow.SUBMITTERS and found.may_submit,
                "may_review": v.scope.role in workflow.REVIEWERS,
                "may_close": v.scope.role in workflow.PARK_OFFICE and found.state == "open",
                "max_mib": workflow.MAX_EVIDENCE_BYTES // (1024 * 1024),
            },
        )

    @app.post("/enterprises/{enterprise_id}/requests/{request_id}/submissions")
    def enterprise_request_submit(
        v: Scoped,
        enterprise_id: str,
        request_id: int,
        quantity: Annotated[str, Form()] = "",
        unit: Annotated[str, Form()] = "",
        evidence: Annotated[list[UploadFile] | None, File()] = None,
    ) -> Response:
        files = []
        for upload in evidence or []:
            content = upload.file.read(workflow.MAX_EVIDENCE_BYTES + 1)  # one byte more tells it is too large
            if upload.filename or content:
                files.append((upload.filename or "", content))
        v.submit(enterprise_id, request_id, quantity, unit, files)
        return RedirectResponse(f"/enterprises/{enterprise_id}/requests/{request_id}", status_code=303)

    @app.post("/enterprises/{enterprise_id}/requests/{request_id}/versions/{version}/approve")
    def enterprise_request_approve(v: Scoped, enterprise_id: str, request_id: int, version: int) -> Response:
        v.approve(enterprise_id, request_id, version)
        return RedirectResponse(f"/enterprises/{enterprise_id}/requests/{request_id}", status_code=303)

    @app.post("/enterprises/{enterprise_id}/requests/{request_id}/versions/{version}/reject")
    def enterprise_request_reject(
        v: Scoped, enterprise_id: str, request_id: int, version: int, reason: Annotated[str, Form()] = ""
    ) -> Response:
        v.reject(enterprise_id, request_id, version, reason)
        return RedirectResponse(f"/enterprises/{enterprise_id}/requests/{request_id}", status_code=303)

    @app.post("/enterprises/{enterprise_id}/requests/{request_id}/close")
    def enterprise_request_close(v: Scoped, enterprise_id: str, request_id: int) -> Response:
        v.close_request(enterprise_id, request_id)
        return RedirectResponse(f"/enterprises/{enterprise_id}/requests/{request_id}", status_code=303)

    @app.get("/enterprises/{enterprise_id}/requests/{request_id}/evidence/{evidence_id}")
    def enterprise_request_evidence(v: Scoped, enterprise_id: str, request_id: int, evidence_id: int) -> Response:
        content, name, media = v.evidence_file(enterprise_id, request_id, evidence_id)
        return Response(
            content, media_type=media, headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
        )

    @app.get("/park/requests", response_class=HTMLResponse)
    def park_requests(request: Request, v: Scoped) -> Response:
        submitted, overdue = v.review_queue()
        return page(
            request,
            "review.html",
            {"submitted": submitted, "overdue": overdue, "today": v.today(), "enterprises": v.scope.enterprises()},
        )

    # -- banks, consents and credit reports (portal/consent.py, reports/credit.py) ------------------------

    @app.get("/enterprises/{enterprise_id}/consents", response_class=HTMLResponse)
    def enterprise_consents(request: Request, v: Scoped, enterprise_id: str) -> Response:
        enterprise = v.scope.enterprise(enterprise_id)
        return page(
            request,
            "consents.html",
            {
                "enterprise": enterprise,
                "consents": v.consents_of(enterprise_id),
                "banks": v.banks(),
                "today": v.today(),
                "may_grant": v.scope.role in consent.GRANTORS,
            },
        )

    @app.post("/enterprises/{enterprise_id}/consents")
    def enterprise_consent_grant(
        v: Scoped,
        enterprise_id: str,
        bank_id: Annotated[str, Form()] = "",
        valid_until: Annotated[str, Form()] = "",
    ) -> Response:
        v.grant_consent(enterprise_id, bank_id, valid_until)
        return RedirectResponse(f"/enterprises/{enterprise_id}/consents", status_code=303)

    @app.post("/enterprises/{enterprise_id}/consents/{consent_id}/revoke")
    def enterprise_consent_revoke(v: Scoped, enterprise_id: str, consent_id: int) -> Response:
        v.revoke_consent(enterprise_id, consent_id)
        return RedirectResponse(f"/enterprises/{enterprise_id}/consents", status_code=303)

    @app.get("/bank", response_class=HTMLResponse)
    def bank_home(request: Request, v: Scoped) -> Response:
        return page(request, "bank.html", {"reports": v.bank_reports(), "bank_id": v.scope.bank_id})

    @app.get("/reports/credit/{enterprise_id}/{year}.html")
    def credit_report_html(v: Scoped, enterprise_id: str, year: int) -> Response:
        return HTMLResponse(credit.to_html(v.credit_report(enterprise_id, year)))

    @app.get("/reports/credit/{enterprise_id}/{year}.json")
    def credit_report_json(v: Scoped, enterprise_id: str, year: int) -> dict[str, Any]:
        return credit.to_json(v.credit_report(enterprise_id, year))

    @app.post("/park/banks")
    def park_bank_create(
        v: Scoped, bank_id: Annotated[str, Form()] = "", name: Annotated[str, Form()] = ""
    ) -> Response:
        v.create_bank(bank_id, name)
        return RedirectResponse("/park/users", status_code=303)

    # -- offers and surrender (portal/offers.py) ---------------------------------------------------------

    @app.get("/enterprises/{enterprise_id}/offers", response_class=HTMLResponse)
    def enterprise_offers(request: Request, v: Scoped, enterprise_id: str) -> Response:
        enterprise = v.scope.enterprise(enterprise_id)
        return page(
            request,
            "offers.html",
            {
                "enterprise": enterprise,
                "offers": v.offers_of(enterprise_id),
                "holdings": _records_of(v.holdings(enterprise_id)),
                "now": datetime.now(UTC),
                "may_trade": v.scope.role in offers.TRADERS,
            },
        )

    @app.post("/enterprises/{enterprise_id}/offers")
    def enterprise_offer_make(
        v: Scoped,
        enterprise_id: str,
        buyer: Annotated[str, Form()] = "",
        amount_t: Annotated[str, Form()] = "",
        price_cny_per_t: Annotated[str, Form()] = "",
        vintage: Annotated[str, Form()] = "",
        expires_at: Annotated[str, Form()] = "",
    ) -> Response:
        v.make_offer(enterprise_id, buyer, amount_t, price_cny_per_t, vintage, expires_at)
        return RedirectResponse(f"/enterprises/{enterprise_id}/offers", status_code=303)

    @app.post("/enterprises/{enterprise_id}/offers/{offer_id}/accept")
    def enterprise_offer_accept(v: Scoped, enterprise_id: str, offer_id: int) -> Response:
        v.accept_offer(enterprise_id, offer_id)
        return RedirectResponse(f"/enterprises/{enterprise_id}/offers", status_code=303)

    @app.post("/enterprises/{enterprise_id}/offers/{offer_id}/decline")
    def enterprise_offer_decline(v: Scoped, enterprise_id: str, offer_id: int) -> Response:
        v.decide_offer(enterprise_id, offer_id, "declined")
        return RedirectResponse(f"/enterprises/{enterprise_id}/offers", status_code=303)

    @app.post("/enterprises/{enterprise_id}/offers/{offer_id}/withdraw")
    def enterprise_offer_withdraw(v: Scoped, enterprise_id: str, offer_id: int) -> Response:
        v.decide_offer(enterprise_id, offer_id, "withdrawn")
        return RedirectResponse(f"/enterprises/{enterprise_id}/offers", status_code=303)

    @app.get("/park/offers", response_class=HTMLResponse)
    def park_offers(request: Request, v: Scoped) -> Response:
        return page(request, "offers.html", {"enterprise": None, "offers": v.park_offers(), "now": datetime.now(UTC)})

    def surrender_page(
        request: Request, v: View, enterprise_id: str, year: int | None, before: dict[str, Any] | None = None
    ) -> Response:
        enterprise = v.scope.enterprise(enterprise_id)
        year = year or v.today().year - 1  # the obligation settled last: the year before this one
        return page(
            request,
            "surrender.html",
            {
                "enterprise": enterprise,
                "year": year,
                "holdings": _records_of(v.holdings(enterprise_id)),
                "obligation": v.obligation(enterprise_id, year),
                "before": before,
                "token": secrets.token_hex(16),
                "may_surrender": v.scope.role == "enterprise_admin",
            },
        )

    @app.get("/enterprises/{enterprise_id}/surrender", response_class=HTMLResponse)
    def enterprise_surrender_form(request: Request, v: Scoped, enterprise_id: str, year: int | None = None) -> Response:
        return surrender_page(request, v, enterprise_id, year)

    @app.post("/enterprises/{enterprise_id}/surrender", response_class=HTMLResponse)
    def enterprise_surrender(
        request: Request,
        v: Scoped,
        enterprise_id: str,
        obligation_year: Annotated[str, Form()] = "",
        surrender_vintage: Annotated[str, Form()] = "",
        amount_t: Annotated[str, Form()] = "",
        token: Annotated[str, Form()] = "",
    ) -> Response:
        v.scope.enterprise(enterprise_id)  # another enterprise's id: 404 before anything is read
        try:
            year, vintage = int(obligation_year), int(surrender_vintage)
        except ValueError:
            raise workflow.InvalidInputError("the obligation year and the vintage are years (YYYY)") from None
        before: dict[str, Any] = {
            "holdings": _records_of(v.holdings(enterprise_id)),
            "obligation": v.obligation(enterprise_id, year),
        }
        booked = v.surrender(enterprise_id, year, amount_t, vintage, token)
        before["transaction"] = booked.transaction_id
        return surrender_page(request, v, enterprise_id, year, before)

    # -- result versions, publication (公示), objections, issuance (portal/publication.py) ---------------

    publication_days = load_policy(config.policy).publication_working_days
    # The park's date the 公示 window is judged by (tests move it past a window's end).
    app.state.publication_today = lambda: datetime.now(ZoneInfo(registry.park.timezone)).date()

    def results_of(request: Request, v: View) -> ResultsView:
        return ResultsView(backend, v.scope, v.actor, publication_days, request.app.state.publication_today)

    @app.get("/park/results", response_class=HTMLResponse)
    def park_results(request: Request, v: Scoped) -> Response:
        r = results_of(request, v)
        return page(request, "results.html", {"versions": r.park_versions(), "today": r.today()})

    @app.get("/park/results/{version_id}", response_class=HTMLResponse)
    def park_result(request: Request, v: Scoped, version_id: int) -> Response:
        r = results_of(request, v)
        found = r.version(version_id)
        return page(
            request,
            "result.html",
            {
                "view": found,
                "today": r.today(),
                "holding": found.holding(r.today()),
                "lists": publication.LISTS,
                "may_move": v.scope.role in publication.PARK_OFFICE,
                "may_decide": v.scope.role in publication.DECIDERS,
                "may_approve": v.scope.role in publication.ISSUANCE_APPROVERS,
            },
        )

    @app.post("/park/results/{version_id}/publish")
    def park_result_publish(request: Request, v: Scoped, version_id: int) -> Response:
        results_of(request, v).publish(version_id)
        return RedirectResponse(f"/park/results/{version_id}", status_code=303)

    @app.post("/park/results/{version_id}/finalise")
    def park_result_finalise(request: Request, v: Scoped, version_id: int) -> Response:
        results_of(request, v).finalise(version_id)
        return RedirectResponse(f"/park/results/{version_id}", status_code=303)

    @app.post("/park/results/{version_id}/issuance/approve")
    def park_result_approve(request: Request, v: Scoped, version_id: int) -> Response:
        results_of(request, v).approve_issuance(version_id)
        return RedirectResponse(f"/park/results/{version_id}", status_code=303)

    @app.post("/park/results/{version_id}/objections/{objection_id}/decide")
    def park_result_decide(
        request: Request,
        v: Scoped,
        version_id: int,
        objection_id: int,
        decision: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        results_of(request, v).decide_objection(version_id, objection_id, decision, reason)
        return RedirectResponse(f"/park/results/{version_id}", status_code=303)

    @app.get("/park/results/{version_id}/lists/{list_name}.{fmt}")
    def park_result_list(request: Request, v: Scoped, version_id: int, list_name: str, fmt: str) -> Response:
        content, name, media = results_of(request, v).list_file(version_id, list_name, fmt)
        return Response(content, media_type=media, headers={"content-disposition": f"attachment; filename={name}"})

    @app.get("/enterprises/{enterprise_id}/results", response_class=HTMLResponse)
    def enterprise_results(request: Request, v: Scoped, enterprise_id: str) -> Response:
        r = results_of(request, v)
        return page(
            request,
            "enterprise_results.html",
            {
                "enterprise": v.scope.enterprise(enterprise_id),
                "views": r.enterprise_versions(enterprise_id),
                "today": r.today(),
                "may_object": v.scope.role in publication.OBJECTORS,
            },
        )

    @app.post("/enterprises/{enterprise_id}/results/{version_id}/objections")
    def enterprise_result_object(
        request: Request, v: Scoped, enterprise_id: str, version_id: int, reason: Annotated[str, Form()] = ""
    ) -> Response:
        results_of(request, v).file_objection(enterprise_id, version_id, reason)
        return RedirectResponse(f"/enterprises/{enterprise_id}/results", status_code=303)

    # -- the registry edited on the platform (portal/registry_edit.py) ----------------------------------

    def registry_page(
        request: Request,
        v: View,
        as_of: str | None = None,
        errors: list[str] | None = None,
        typed: dict[str, str] | None = None,
    ) -> Response:
        if not v.scope.is_park:
            raise ForbiddenError("the park's registry is for the park office and the auditor")
        try:
            day = registry_edit.parse_day(as_of, v.today())
        except workflow.InvalidInputError:
            if not errors:
                raise
            day = v.today()  # a refused form with a date that is none: the page of today, with the errors
        with reader.connect() as conn:
            listed = registry_edit.entries(conn, day)
            pending = registry_edit.load_proposals(conn, v.scope.enterprise_ids, "proposed")
        return page(
            request,
            "registry.html",
            {
                "as_of": day,
                "entries": listed,
                "kinds": registry_edit.KIND_NAMES,
                "fields": registry_edit.FORM_FIELDS,
                "pending": len(pending),
                "may_edit": v.scope.role in registry_edit.EDITORS,
                "errors": errors or [],
                "typed": typed or {},
            },
            400 if errors else 200,
        )

    def registry_refused(v: View, target: str, exc: workflow.InvalidInputError) -> list[str]:
        """A refused change: its errors (each naming the entry and the field) in the audit log and on the page."""
        with writer.begin() as conn:
            record(conn, v.actor, "registry.refused", target, "", str(exc))
        return [line for line in str(exc).splitlines() if line.strip()]

    @app.get("/park/registry", response_class=HTMLResponse)
    def park_registry(request: Request, v: Scoped, as_of: str | None = None) -> Response:
        return registry_page(request, v, as_of)

    def registry_download(v: View, as_of: str | None, csv_file: bool) -> Response:
        """The registry file or the enterprises file as they were on ``as_of`` (today by default)."""
        v.scope.require_park()
        day = registry_edit.parse_day(as_of, v.today())
        with reader.connect() as conn:
            registry_text, enterprises_text = registry_edit.export(conn, day)
        name, content, media_type = (
            (f"enterprises-{day.isoformat()}.csv", enterprises_text, "text/csv; charset=utf-8")
            if csv_file
            else (f"registry-{day.isoformat()}.yaml", registry_text, "application/yaml; charset=utf-8")
        )
        return Response(content, media_type=media_type, headers={"content-disposition": f"attachment; filename={name}"})

    @app.get("/park/registry/export/registry.yaml")
    def park_registry_export_yaml(v: Scoped, as_of: str | None = None) -> Response:
        return registry_download(v, as_of, csv_file=False)

    @app.get("/park/registry/export/enterprises.csv")
    def park_registry_export_csv(v: Scoped, as_of: str | None = None) -> Response:
        return registry_download(v, as_of, csv_file=True)

    @app.post("/park/registry/{entry_kind}", response_class=HTMLResponse)
    async def park_registry_put(request: Request, v: Scoped, entry_kind: str) -> Response:
        registry_edit.require_editor(v.actor)
        form = await request.form()
        typed = {k: str(value) for k, value in form.items() if isinstance(value, str) and k != CSRF_FIELD}
        fields = {k.removeprefix("f_"): value for k, value in typed.items() if k.startswith("f_")}
        try:
            with writer.begin() as conn:
                registry_edit.put(
                    conn,
                    v.actor,
                    entry_kind,
                    typed.get("mode", ""),
                    fields,
                    typed.get("valid_from", ""),
                    typed.get("reason", ""),
                    datetime.now(UTC),
                )
        except workflow.InvalidInputError as exc:
            errors = registry_refused(v, f"registry:{entry_kind}:{fields.get('id', '')}", exc)
            return registry_page(request, v, typed.get("valid_from"), errors, {"kind": entry_kind, **typed})
        return RedirectResponse(f"/park/registry?as_of={quote(typed.get('valid_from', ''))}", status_code=303)

    @app.post("/park/registry/{entry_kind}/{entity_id}/close", response_class=HTMLResponse)
    def park_registry_close(
        request: Request,
        v: Scoped,
        entry_kind: str,
        entity_id: str,
        valid_from: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        registry_edit.require_editor(v.actor)
        try:
            with writer.begin() as conn:
                registry_edit.close(conn, v.actor, entry_kind, entity_id, valid_from, reason, datetime.now(UTC))
        except workflow.InvalidInputError as exc:
            errors = registry_refused(v, f"registry:{entry_kind}:{entity_id}", exc)
            return registry_page(request, v, None, errors)
        return RedirectResponse(f"/park/registry?as_of={quote(valid_from)}", status_code=303)

    @app.get("/park/registry-proposals", response_class=HTMLResponse)
    def park_registry_proposals(request: Request, v: Scoped) -> Response:
        v.scope.require_park()
        with reader.connect() as conn:
            listed = registry_edit.load_proposals(conn, v.scope.enterprise_ids)
        return page(
            request,
            "registry_proposals.html",
            {"proposals": listed, "may_review": v.scope.role in registry_edit.REVIEWERS},
        )

    @app.post("/park/registry-proposals/{proposal_id}/approve")
    def park_registry_proposal_approve(v: Scoped, proposal_id: int) -> Response:
        v.scope.require_park()
        with writer.begin() as conn:
            registry_edit.approve(
                conn, v.actor, v.scope.enterprise_ids, proposal_id, registry.park.timezone, datetime.now(UTC)
            )
        return RedirectResponse("/park/registry-proposals", status_code=303)

    @app.post("/park/registry-proposals/{proposal_id}/reject")
    def park_registry_proposal_reject(v: Scoped, proposal_id: int, reason: Annotated[str, Form()] = "") -> Response:
        v.scope.require_park()
        with writer.begin() as conn:
            registry_edit.reject(conn, v.actor, v.scope.enterprise_ids, proposal_id, reason, datetime.now(UTC))
        return RedirectResponse("/park/registry-proposals", status_code=303)

    @app.get("/enterprises/{enterprise_id}/registry", response_class=HTMLResponse)
    def enterprise_registry(request: Request, v: Scoped, enterprise_id: str, as_of: str | None = None) -> Response:
        enterprise = v.scope.enterprise(enterprise_id)
        day = registry_edit.parse_day(as_of, v.today())
        with reader.connect() as conn:
            listed = registry_edit.entries(conn, day, enterprise.id)
            proposed = registry_edit.load_proposals(conn, [enterprise.id])
        return page(
            request,
            "enterprise_registry.html",
            {
                "enterprise": enterprise,
                "as_of": day,
                "entries": listed,
                "proposals": proposed,
                "kinds": registry_edit.KIND_NAMES,
                "may_propose": v.scope.role in registry_edit.PROPOSERS,
            },
        )

    @app.post("/enterprises/{enterprise_id}/registry/proposals")
    async def enterprise_registry_propose(request: Request, v: Scoped, enterprise_id: str) -> Response:
        enterprise = v.scope.enterprise(enterprise_id)
        form = await request.form()
        typed = {k: str(value) for k, value in form.items() if isinstance(value, str) and k != CSRF_FIELD}
        now = datetime.now(UTC)
        with writer.begin() as conn:
            if typed.get("kind") == registry_edit.REPLACEMENT:
                meter_id = typed.get("meter", "").strip()
                replacement = registry_edit.parse_replacement(
                    meter_id,
                    typed.get("at", ""),
                    typed.get("old_final_reading", ""),
                    typed.get("new_initial_reading", ""),
                    typed.get("new_multiplier", ""),
                    typed.get("new_serial", ""),
                    registry.park.timezone,
                )
                registry_edit.propose_replacement(
                    conn, v.actor, enterprise.id, meter_id, replacement, typed.get("reason", ""),
                    registry.park.timezone, now,
                )  # fmt: skip
            else:
                fields = {k.removeprefix("f_"): value for k, value in typed.items() if k.startswith("f_")}
                registry_edit.propose_entry(
                    conn, v.actor, enterprise.id, typed.get("kind", ""), fields, typed.get("valid_from", ""),
                    typed.get("reason", ""), now,
                )  # fmt: skip
        return RedirectResponse(f"/enterprises/{enterprise.id}/registry", status_code=303)

    @app.post("/enterprises/{enterprise_id}/registry/proposals/{proposal_id}/withdraw")
    def enterprise_registry_withdraw(v: Scoped, enterprise_id: str, proposal_id: int) -> Response:
        enterprise = v.scope.enterprise(enterprise_id)
        with writer.begin() as conn:
            registry_edit.withdraw(conn, v.actor, enterprise.id, proposal_id, datetime.now(UTC))
        return RedirectResponse(f"/enterprises/{enterprise.id}/registry", status_code=303)

    # -- users ------------------------------------------------------------------------------------------

    def users_page(
        request: Request, v: View, enterprise_id: str | None, created: tuple[str, str] | None = None
    ) -> Response:
        return page(
            request,
            "users.html",
            {
                "enterprise_id": enterprise_id,
                "enterprise": v.scope.enterprise(enterprise_id) if enterprise_id else None,
                "users": v.users(enterprise_id),
                "roles": v.roles_for(enterprise_id),
                "created": created,
                "base": f"/enterprises/{enterprise_id}/users" if enterprise_id else "/park/users",
                "banks": [] if enterprise_id else v.banks(),
                "bank_of": {} if enterprise_id else v.bank_members(),
            },
        )

    @app.get("/enterprises/{enterprise_id}/users", response_class=HTMLResponse)
    def enterprise_users(request: Request, v: Scoped, enterprise_id: str) -> Response:
        return users_page(request, v, enterprise_id)

    @app.post("/enterprises/{enterprise_id}/users", response_class=HTMLResponse)
    def enterprise_user_create(
        request: Request, v: Scoped, enterprise_id: str, username: Annotated[str, Form()], role: Annotated[str, Form()]
    ) -> Response:
        user, password = v.create_user(enterprise_id, username, role)
        return users_page(request, v, enterprise_id, (user.username, password))

    @app.post("/enterprises/{enterprise_id}/users/{username}/active")
    def enterprise_user_active(
        v: Scoped, enterprise_id: str, username: str, active: Annotated[bool, Form()]
    ) -> Response:
        v.set_user_active(enterprise_id, username, active)
        return RedirectResponse(f"/enterprises/{enterprise_id}/users", status_code=303)

    @app.post("/enterprises/{enterprise_id}/users/{username}/password", response_class=HTMLResponse)
    def enterprise_user_password(request: Request, v: Scoped, enterprise_id: str, username: str) -> Response:
        password = v.reset_password(enterprise_id, username)
        return users_page(request, v, enterprise_id, (username, password))

    @app.get("/park/users", response_class=HTMLResponse)
    def park_users(request: Request, v: Scoped) -> Response:
        return users_page(request, v, None)

    @app.post("/park/users", response_class=HTMLResponse)
    def park_user_create(
        request: Request,
        v: Scoped,
        username: Annotated[str, Form()],
        role: Annotated[str, Form()],
        enterprise_id: Annotated[str, Form()] = "",
        bank_id: Annotated[str, Form()] = "",
    ) -> Response:
        user, password = (
            v.create_user(enterprise_id, username, role, bank_id)
            if enterprise_id
            else v.create_user(None, username, role, bank_id)
        )
        return users_page(request, v, None, (user.username, password))

    @app.post("/park/users/{username}/active")
    def park_user_active(v: Scoped, username: str, active: Annotated[bool, Form()]) -> Response:
        v.set_user_active(None, username, active)
        return RedirectResponse("/park/users", status_code=303)

    @app.post("/park/users/{username}/password", response_class=HTMLResponse)
    def park_user_password(request: Request, v: Scoped, username: str) -> Response:
        password = v.reset_password(None, username)
        return users_page(request, v, None, (username, password))

    # -- gateways' broker credentials (portal/gateways.py) ------------------------------------------------

    def gateways_page(request: Request, v: View, shown: tuple[str, str] | None = None) -> Response:
        return page(request, "gateways.html", {"gateways": v.gateway_credentials(), "shown": shown})

    @app.get("/park/gateways", response_class=HTMLResponse)
    def park_gateways(request: Request, v: Scoped) -> Response:
        return gateways_page(request, v)

    @app.post("/park/gateways/{gateway_id}/issue", response_class=HTMLResponse)
    def park_gateway_issue(request: Request, v: Scoped, gateway_id: str) -> Response:
        return gateways_page(request, v, (gateway_id, v.issue_gateway_credentials(gateway_id)))

    @app.post("/park/gateways/{gateway_id}/rotate", response_class=HTMLResponse)
    def park_gateway_rotate(
        request: Request, v: Scoped, gateway_id: str, generation: Annotated[int, Form()]
    ) -> Response:
        return gateways_page(request, v, (gateway_id, v.rotate_gateway_credentials(gateway_id, generation)))

    @app.post("/park/gateways/{gateway_id}/revoke")
    def park_gateway_revoke(v: Scoped, gateway_id: str) -> Response:
        v.revoke_gateway_credentials(gateway_id)
        return RedirectResponse("/park/gateways", status_code=303)

    # -- the park ---------------------------------------------------------------------------------------

    @app.get("/park", response_class=HTMLResponse)
    def park_page(request: Request, v: Scoped, period: str | None = None) -> Response:
        data = v.park_month(period)
        grades = [k for k in data.grades]
        chart = bar_chart(
            "等级分布 grade distribution",
            grades,
            {"enterprises": [float(data.grades[g]) for g in grades]},
            "enterprises",
        )
        return page(request, "park.html", {"p": data, "chart": chart})

    @app.get("/park/charts/grades.json")
    def park_grades(v: Scoped, period: str | None = None) -> dict[str, Any]:
        return v.grade_counts(period)

    @app.get("/park/audit", response_class=HTMLResponse)
    def park_audit(request: Request, v: Scoped) -> Response:
        return page(request, "audit.html", {"entries": v.audit_entries()})

    return app
