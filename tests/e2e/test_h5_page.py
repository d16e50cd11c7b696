"""The borrower's page (`web/`, served at /app/) in headless Chromium on the local stack.

The whole journey as a borrower makes it, by clicks and keys at 375×667: sign in with a
WeChat sandbox code, bind a phone with the code the stack texted, real-name, a card, the
products (all-in APR first), apply, draw now and draw later then cancel, the `make jobs` days
(a reminder in the inbox, an installment repaid, the day anchored), pay off, and the statement
checked on the device. Each screen is saved to build/screens/ and checked with axe-core (no
serious or critical finding). The page runs under its real Content-Security-Policy.

Chromium is Debian's (`make browser` installs it; `make test` fails without it, a plain
pytest run skips). Playwright drives it; its own browser download is never used.
"""
from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import ROOT, wait_for
from tests.e2e.test_journey import run_jobs
from tests.journeys import card_ending, last_code, resident_id

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENS = ROOT / "build" / "screens"
# As the machine notes say: without the background-networking flags Chromium keeps dialling
# Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = (375, 667)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if os.environ.get("H5_BROWSER") == "required":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def phone_page(browser, stack):
    context = browser.new_context(viewport={"width": PHONE[0], "height": PHONE[1]}, locale="zh-CN",
                                  base_url=stack["base"])
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # The API's own 4xx answers are part of the journey (they show as "Failed to load resource");
    # a script error, or a page asset the server does not have, is not.
    page.on("console", lambda msg: problems.append(f"console: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and "/v1/" not in r.url else None)
    page.problems = problems
    yield page
    context.close()


def axe_script() -> str:
    import axe_playwright_python
    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


def screen(page, name: str) -> None:
    """Save the screen, then assert axe finds nothing serious or critical on it."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.wait_for_selector("main:not([aria-busy])")
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)
    page.evaluate(axe_script())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0], f"{name} scrolls sideways"


def shows(page, title: str) -> None:
    """Wait until the screen with this heading has rendered (navigation is asynchronous)."""
    from playwright.sync_api import expect
    expect(page.locator("main:not([aria-busy]) h1")).to_have_text(title, timeout=20_000)


def tab(page, name: str) -> None:
    page.locator("#tabs").get_by_role("link", name=name, exact=True).click()


def api_get(stack, page, path: str) -> dict:
    """What the API says, with the page's own session: to check the page shows it exactly."""
    token = page.evaluate("sessionStorage.getItem('lending.access')")
    answer = requests.get(stack["base"] + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def yuan(fen: int) -> str:
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def until_status(page, wanted: str, timeout: float = 60) -> None:
    def shown() -> bool:
        page.reload()
        page.wait_for_selector("main:not([aria-busy]) h1")
        return page.locator("main .badge").first.inner_text() == wanted
    wait_for(shown, timeout=timeout, every=1)


def test_the_whole_journey_in_the_browser(phone_page, stack):
    page = phone_page
    phone = "13700002222"
    page.goto("/app/")
    shows(page, "登录")
    screen(page, "01-sign-in")

    # WeChat sandbox code, submitted with the keyboard's Enter
    page.get_by_label("微信授权码").fill("dev-h5-journey")
    page.get_by_label("微信授权码").press("Enter")
    shows(page, "我的")

    page.get_by_label("手机号").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    page.wait_for_selector("#status:has-text('验证码已发送')")
    page.get_by_label("短信验证码").fill(last_code(stack["outbox"], phone))
    page.get_by_role("button", name="绑定手机号").click()
    page.wait_for_selector("#identity")
    page.get_by_label("姓名").fill("张三")
    page.get_by_label("身份证号").fill(resident_id(date(1988, 5, 17)))
    page.get_by_role("button", name="提交实名认证").click()
    page.wait_for_selector("#card")
    screen(page, "02-onboarding-card")
    page.get_by_label("借记卡卡号").fill(card_ending("4321"))
    page.locator("#card").get_by_role("button", name="添加银行卡").click()
    page.wait_for_selector("main .ok:has-text('银行卡已添加')")
    assert "137****2222" in page.inner_text("main")  # masked, as everywhere
    assert phone not in page.content()

    tab(page, "产品")
    shows(page, "借款产品")
    # compliance: in every product card the all-in annual rate comes before anything else
    order = page.evaluate("""() => [...document.querySelectorAll('main article')].map(a =>
        [...a.children].findIndex(c => c.classList.contains('apr')))""")
    assert order and all(i == 1 for i in order), order  # after its label only
    screen(page, "03-products")

    page.get_by_role("link", name="申请 随借随还消费信用").click()
    shows(page, "申请借款")
    for label, value in [("借款金额（元）", "50000"), ("借款用途", "装修"), ("月收入（元）", "20000"),
                         ("月支出（元）", "4000"), ("资产（元）", "500000"), ("现有负债（元）", "0"),
                         ("当前工作年限（年）", "8")]:
        page.get_by_label(label).fill(value)
    page.get_by_label("居住情况").select_option("owner")
    screen(page, "04-apply")
    page.get_by_role("button", name="提交申请").click()
    shows(page, "审批结果")
    assert page.locator("main .badge").inner_text() == "已批准"
    decision_id = page.evaluate("location.hash").split("/")[-1]
    decision = api_get(stack, page, f"/v1/applications/{decision_id}")
    assert yuan(decision["credit_limit"]) in page.inner_text("main")
    screen(page, "05-decision")

    # draw now: the answer is the schedule preview, cancellable until paid out
    page.get_by_role("link", name="去借款").click()
    shows(page, "借款")
    page.get_by_label("借多少（元）").fill("10000")
    page.get_by_label("借款期限").select_option("12")
    page.get_by_label("等额本息").check()
    screen(page, "06-draw")
    page.get_by_role("button", name="确认借款").click()
    shows(page, "借款详情")
    loan_id = page.evaluate("location.hash").split("/")[-1]
    loan = api_get(stack, page, f"/v1/loans/{loan_id}")
    text = page.inner_text("main")
    assert loan["principal"] == 1_000_000 and len(loan["schedule"]) == 12
    assert yuan(loan["total_repayment"]) in text and yuan(loan["total_interest"]) in text
    assert text.index("您的年化利率") < text.index("总还款额")
    assert page.locator("main tbody tr").count() == 12
    screen(page, "07-loan-preview")
    until_status(page, "还款中")
    screen(page, "08-loan-active")

    # draw later with the time picker, then cancel before the pay-out
    tab(page, "我的")
    page.get_by_role("link", name="去借款").click()
    page.get_by_label("借多少（元）").fill("1000")
    page.get_by_label("预约放款").check()
    picked = page.get_by_label("预约时间（北京时间，7 天内）").input_value()
    page.get_by_role("button", name="确认借款").click()
    shows(page, "借款详情")
    later_id = page.evaluate("location.hash").split("/")[-1]
    later = api_get(stack, page, f"/v1/loans/{later_id}")
    assert later["status"] == "scheduled" and later["disburse_at"].startswith(picked)
    page.get_by_role("button", name="取消借款").click()
    page.wait_for_selector("main .ok:has-text('借款已取消')")
    assert api_get(stack, page, f"/v1/loans/{later_id}")["status"] == "cancelled"

    # the reminder days: three days before the first due date, the inbox has it
    due = date.fromisoformat(loan["schedule"][0]["due_date"])
    run_jobs(stack, f"{due - timedelta(days=3)}T09:00:00+08:00")
    tab(page, "消息")
    shows(page, "消息")
    page.wait_for_selector("main li:has-text('即将到期')")
    screen(page, "09-inbox")

    # repay this installment, the amount the page offers: the loan found through the list
    tab(page, "借款")
    shows(page, "我的借款")
    assert page.locator("main article").count() == 2  # the active loan and the cancelled one
    page.get_by_role("link", name="查看 ¥10,000.00").click()
    shows(page, "借款详情")
    assert page.evaluate("location.hash") == f"#/loans/{loan_id}"
    first = api_get(stack, page, f"/v1/loans/{loan_id}")["schedule"][0]
    page.get_by_label(re.compile("还本期")).check()
    page.get_by_role("button", name="确认还款").click()
    page.wait_for_selector(f"main .ok:has-text('已还 {yuan(first['total'])}')")
    assert api_get(stack, page, f"/v1/loans/{loan_id}")["schedule"][0]["status"] == "paid"
    screen(page, "10-repaid")

    # the next night anchors the day; then any amount, then pay off everything
    run_jobs(stack, f"{due - timedelta(days=2)}T00:10:00+08:00")
    page.reload()
    before = api_get(stack, page, f"/v1/loans/{loan_id}")["outstanding_principal"]
    page.get_by_label("其他金额").check()
    page.get_by_label("还款金额（元）").fill("100.50")
    page.get_by_role("button", name="确认还款").click()
    page.wait_for_selector("main .ok:has-text('已还 ¥100.50')")
    assert api_get(stack, page, f"/v1/loans/{loan_id}")["outstanding_principal"] < before
    payoff = api_get(stack, page, f"/v1/loans/{loan_id}/payoff")
    page.get_by_label(re.compile("提前结清")).check()
    assert yuan(payoff["amount"]) in page.get_by_label(re.compile("提前结清")).evaluate("e => e.parentElement.textContent")
    page.get_by_role("button", name="确认还款").click()
    page.wait_for_selector(f"main .ok:has-text('已还 {yuan(payoff["amount"])}')")
    assert page.locator("main .badge").first.inner_text() == "已结清"
    assert api_get(stack, page, f"/v1/loans/{loan_id}")["status"] == "closed"

    # the statement, checked on the device with SHA-256
    page.get_by_role("link", name="电子账单与校验").click()
    shows(page, "电子账单与校验")
    statement = api_get(stack, page, f"/v1/loans/{loan_id}/statement")
    assert statement["anchors"], "the repayment's day is anchored by the night's close"
    verdict = page.inner_text("#verdict")
    assert verdict == (f"校验通过：{len(statement['entries'])} 条记录的哈希链完整，"
                       f"{len(statement['anchors'])} 个日锚的默克尔证明有效。")
    screen(page, "11-statement")

    # the same page, shown a statement with one amount changed, says so
    def tampered(route):
        body = route.fetch().json()
        body["entries"][0]["amount"] += 1
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
    page.route("**/statement", tampered)
    page.reload()
    page.wait_for_selector("#verdict.error")
    assert "hash" in page.inner_text("#verdict") and "balance" in page.inner_text("#verdict")
    page.unroute("**/statement")

    # the credit report: the latest decision's grade and the record this journey made
    tab(page, "我的")
    page.get_by_role("link", name="查看我的信用报告").click()
    shows(page, "信用报告")
    report = api_get(stack, page, "/v1/me/credit-report")
    assert report["history"]["loans"] == 1 and report["history"]["installments_on_time"] == 12
    assert page.inner_text("main .apr") == report["grade"]
    record = page.inner_text("#record-title + dl")
    assert "按时还款期数\n12\n" in record and "逾期期数\n0\n" in record, record
    screen(page, "12-credit-report")

    # the pay-out picker starts from the service's clock (every answer's Date header), now weeks
    # ahead of this machine's after the jobs days, and a pay-out time chosen ahead does not move it
    tab(page, "我的")
    page.get_by_role("link", name="去借款").click()
    shows(page, "借款")
    clock = requests.get(stack["base"] + "/v1/ops/clock", headers={"X-Ops-Key": stack["ops_key"]}, timeout=30)
    service_now = datetime.fromisoformat(clock.json()["now"])
    assert service_now - datetime.now(service_now.tzinfo) > timedelta(days=7)
    earliest = page.get_by_label("预约时间（北京时间，7 天内）").get_attribute("min")
    assert service_now.strftime("%Y-%m-%dT%H:%M") <= earliest <= \
        (service_now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"), (earliest, service_now)

    # English
    page.get_by_role("button", name="English").click()
    tab(page, "Products")
    shows(page, "Loan products")
    assert page.evaluate("document.documentElement.lang") == "en"
    screen(page, "13-products-en")
    assert not page.problems, page.problems


def test_errors_are_the_apis_own_words(phone_page, stack):
    page = phone_page
    # only web/'s files: a path that climbs out is the API's 404 NOT_FOUND
    outside = requests.get(stack["base"] + "/app/%2e%2e/app.py", timeout=30)
    assert outside.status_code == 404 and outside.json()["error"]["code"] == "NOT_FOUND"
    page.goto("/app/")
    page.get_by_label("手机号").fill("12345")
    page.get_by_role("button", name="获取验证码").click()
    alert = page.locator("#sms [role=alert]")
    alert.wait_for(state="visible")
    answer = requests.post(stack["base"] + "/v1/auth/sms-codes", json={"phone": "12345"}, timeout=30)
    assert answer.status_code == 422
    assert alert.inner_text() == answer.json()["error"]["message"]
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"  # focus moves to it

    phone = "13700003333"
    page.get_by_label("手机号").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    page.wait_for_selector("#status:has-text('验证码已发送')")
    wrong = "000000" if last_code(stack["outbox"], phone) != "000000" else "111111"
    page.get_by_label("短信验证码", exact=True).fill(wrong)
    page.locator("#sms").get_by_role("button", name="登录").click()
    page.wait_for_selector("#sms [role=alert]:has-text('验证码')")
    assert not page.evaluate("sessionStorage.getItem('lending.access')")
    page.get_by_label("短信验证码", exact=True).fill(last_code(stack["outbox"], phone))
    page.locator("#sms").get_by_role("button", name="登录").click()
    shows(page, "我的")  # signed in by SMS alone: the phone is already bound
    assert "137****3333" in page.inner_text("main")
    page.get_by_role("button", name="退出登录").click()
    shows(page, "登录")

    # a WeChat OAuth redirect with a code the API refuses: sign-in, with the API's words as an alert
    page.goto("/app/?code=not-a-sandbox-code")
    shows(page, "登录")
    refused = requests.post(stack["base"] + "/v1/auth/wechat", json={"code": "not-a-sandbox-code"}, timeout=30)
    assert refused.status_code == 401
    assert page.inner_text("main .error[role=alert]") == refused.json()["error"]["message"]
    assert "code=" not in page.url  # the used code is dropped from the address

    # an unsigned visitor asking for a borrower's screen lands on sign-in
    page.goto("/app/#/loans")
    shows(page, "登录")
    # a bad amount never reaches the API: the page says what it wants
    page.get_by_label("微信授权码").fill("dev-h5-errors")
    page.get_by_role("button", name="微信登录").click()
    shows(page, "我的")
    page.goto("/app/#/apply/revolving-credit")
    page.get_by_label("借款金额（元）").fill("12.345")
    page.get_by_role("button", name="提交申请").click()
    page.wait_for_selector("#apply [role=alert]:has-text('最多两位小数')")
    screen(page, "14-error")

    # a decline shows its reasons, most important first, in the API's words
    token = page.evaluate("sessionStorage.getItem('lending.access')")
    auth = {"Authorization": f"Bearer {token}"}
    phone = "13700004444"
    assert requests.post(stack["base"] + "/v1/auth/sms-codes", json={"phone": phone}, timeout=30).status_code == 202
    for path, body in [("/v1/me/phone", {"phone": phone, "code": last_code(stack["outbox"], phone)}),
                       ("/v1/me/identity", {"name": "李四", "id_number": resident_id(date(1991, 7, 9))}),
                       ("/v1/me/bank-cards", {"card_number": card_ending("8642")})]:
        answer = requests.post(stack["base"] + path, json=body, headers=auth, timeout=30)
        assert answer.status_code in (200, 201), answer.text
    page.reload()
    for label, value in [("借款金额（元）", "5000"), ("借款用途", "周转"), ("月收入（元）", "3000"),
                         ("月支出（元）", "2900"), ("资产（元）", "0"), ("现有负债（元）", "300000"),
                         ("当前工作年限（年）", "0")]:
        page.get_by_label(label).fill(value)
    page.get_by_label("工作类型").select_option("partime")
    page.get_by_role("button", name="提交申请").click()
    shows(page, "审批结果")
    assert page.locator("main .badge").inner_text() == "未通过"
    decided = api_get(stack, page, f"/v1/applications/{page.evaluate('location.hash').split('/')[-1]}")
    shown = page.locator("main ul li").all_inner_texts()
    assert decided["status"] == "declined" and len(shown) == len(decided["reasons"]) >= 2
    assert [text.split(" (")[0] for text in shown] == [r["message"] for r in decided["reasons"]]
    screen(page, "15-declined")
    assert not page.problems, page.problems
