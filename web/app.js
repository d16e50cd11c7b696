/* The borrower's page: a reference client of the lending API (../shared/CONTRACT.md).
 *
 * Plain JavaScript, no build step and no third-party code: the page is static files served
 * from the API's own origin (the local stack at /app/, CloudFront when deployed), so every
 * call is same-origin and the Content-Security-Policy can be `default-src 'self'`.
 *
 * Rules it keeps, because a borrower's money depends on them:
 * - Money is integer fen end to end. What a person types ("1234.5") is parsed as text into fen;
 *   nothing is ever multiplied as a float. Rates are the API's decimal strings, shown as %.
 * - The all-in annual rate comes first on every price (compliance), then the totals.
 * - Each money-moving submit carries an Idempotency-Key that stays the same until the form
 *   changes, so a retry after a lost answer can never draw or pay twice.
 * - Error texts are the API's own messages (already in the chosen language), shown in an
 *   alert next to the form that caused them.
 */
"use strict";

(() => {
  // ---------------------------------------------------------------- words (Chinese first)
  const WORDS = {
    zh: {
      brand: "随心借", skip: "跳到正文", tabs: "主菜单", loading: "加载中…", other: "English",
      network: "网络不可用，请稍后重试。", failed: "操作未成功，请重试。",
      tab_products: "产品", tab_loans: "借款", tab_inbox: "消息", tab_me: "我的",
      login: "登录", wx_title: "微信登录", wx_code: "微信授权码", wx_hint: "沙箱环境：输入 dev- 加任意标识，如 dev-zhang",
      wx_go: "微信登录", sms_title: "短信验证码登录", phone: "手机号", code: "短信验证码",
      send_code: "获取验证码", code_sent: (s) => `验证码已发送，${Math.round(s / 60)} 分钟内有效。`,
      sms_go: "登录", signed_in: "已登录", sign_out: "退出登录",
      me: "我的", step_phone: "绑定手机", step_identity: "实名认证", step_card: "绑定银行卡",
      bind_phone: "绑定手机号", phone_bound: "手机号已绑定", name: "姓名", id_number: "身份证号",
      verify_id: "提交实名认证", identity_ok: "实名认证已通过", card_number: "借记卡卡号",
      add_card: "添加银行卡", card_added: "银行卡已添加", cards: "银行卡",
      verified: "已实名", credit_line: "我的额度", no_line: "尚无额度：选择产品申请即可获得。",
      limit: "授信额度", available: "可用额度", see_products: "查看可借产品",
      products: "借款产品", apr_label: "年化利率（单利，含全部费用）", your_apr: "您的年化利率",
      amount_range: "借款金额", terms: "期限", months: (n) => `${n} 个月`, methods: "还款方式",
      your_offer: (a, m) => `您可借最高 ${m}，年化利率 ${a}`, apply: "申请", business_code: "统一社会信用代码（经营贷）",
      apply_title: "申请借款", amount: "借款金额（元）", term: "借款期限", purpose: "借款用途",
      income: "月收入（元）", expenses: "月支出（元）", assets: "资产（元）", debt: "现有负债（元）",
      job_type: "工作类型", seniority: "当前工作年限（年）", home: "居住情况", submit_apply: "提交申请",
      job_fixed: "固定工作", job_freelance: "自由职业", job_partime: "兼职", job_others: "其他",
      home_owner: "自有住房", home_rent: "租房", home_parents: "与父母同住", home_priv: "单位宿舍", home_other: "其他",
      decision: "审批结果", reasons: "原因", credit_limit: "授信额度", model: "模型版本", decided_at: "审批时间",
      draw_now: "去借款", app_approved: "已批准", app_declined: "未通过", app_review: "人工审核中",
      draw: "借款", no_application: "请先申请额度。", draw_amount: "借多少（元）",
      draw_hint: (a, lo, hi) => `可用额度 ${a}；本产品 ${lo}–${hi}`, method: "还款方式",
      m_equal_installment: "等额本息", m_equal_principal: "等额本金", m_interest_first: "先息后本",
      card: "收款银行卡", when: "放款时间", now: "立即放款", later: "预约放款",
      later_at: "预约时间（北京时间，7 天内）", confirm_draw: "确认借款",
      loans: "我的借款", no_loans: "还没有借款。", view: "查看",
      loan: "借款详情", principal: "借款本金", outstanding: "待还本金", total_interest: "总利息",
      total_repayment: "总还款额", term_n: "期数", disburse_at: "放款时间", disbursed_at: "到账时间",
      s_scheduled: "待放款", s_disbursing: "放款中", s_active: "还款中", s_overdue: "已逾期",
      s_closed: "已结清", s_cancelled: "已取消", s_failed: "放款失败",
      i_pending: "待还", i_partially_paid: "部分已还", i_paid: "已还", i_overdue: "逾期",
      scheduled_note: "放款前可随时取消，不收取任何费用。以下为还款计划预览。",
      cancel: "取消借款", cancelled: "借款已取消", schedule: "还款计划", col_n: "期", col_due: "到期日",
      col_total: "应还", col_paid: "已还", col_status: "状态", col_sum: "合计",
      repay: "还款", pay_next: (a) => `还本期 ${a}`, pay_off: (a) => `提前结清 ${a}`,
      pay_other: "其他金额", other_amount: "还款金额（元）", payoff_detail: (p, i, f) => `本金 ${p}，利息 ${i}，罚息 ${f}，无提前还款手续费`,
      submit_repay: "确认还款", repaid: (a, f, i, p) => `已还 ${a}：罚息 ${f}，利息 ${i}，本金 ${p}`,
      amount_invalid: "请输入金额，如 1000 或 1000.50（最多两位小数）。",
      statement: "电子账单与校验", statement_link: "电子账单与校验",
      verified_ok: (n, m) => `校验通过：${n} 条记录的哈希链完整，${m} 个日锚的默克尔证明有效。`,
      verified_bad: "校验未通过：", verify_note: "本页在您的设备上用 SHA-256 重新计算每条记录与证明。要证明记录未被改写，请将日锚根值与您另行保存或出借方公开的根值比对（docs/LEDGER.md）。",
      entries: "账目", anchors: "日锚", col_at: "时间", col_kind: "类型", col_amount: "金额",
      k_disbursement: "放款", k_repayment: "还款", k_penalty: "罚息",
      inbox: "消息", no_messages: "暂无消息。",
      report: "信用报告", report_link: "查看我的信用报告", grade: "信用等级", no_grade: "暂无评级：申请后生成。",
      grade_note: "A 为风险最低，E 为最高，依据最近一次审批。", helps: "有利因素", hurts: "不利因素",
      record: "我的记录", h_applications: "申请次数", h_approved: "获批次数", h_loans: "借款笔数",
      h_installments_on_time: "按时还款期数", h_installments_late: "逾期期数", h_max_days_past_due: "最长逾期天数",
      as_of: "生成时间",
      n_due_soon: "即将到期", n_due_today: "今日到期", n_overdue: "逾期提醒", n_disbursed: "已放款",
      n_disbursement_failed: "放款失败", n_repayment_received: "还款成功", n_loan_closed: "已结清",
    },
    en: {
      brand: "Easy Credit", skip: "Skip to content", tabs: "Main menu", loading: "Loading…", other: "中文",
      network: "The network is unavailable. Try again in a moment.", failed: "That did not work. Try again.",
      tab_products: "Products", tab_loans: "Loans", tab_inbox: "Inbox", tab_me: "Me",
      login: "Sign in", wx_title: "WeChat", wx_code: "WeChat authorisation code", wx_hint: "Sandbox: dev- and any id, e.g. dev-zhang",
      wx_go: "Sign in with WeChat", sms_title: "SMS code", phone: "Mobile number", code: "SMS code",
      send_code: "Send code", code_sent: (s) => `Code sent; it works for ${Math.round(s / 60)} minutes.`,
      sms_go: "Sign in", signed_in: "Signed in", sign_out: "Sign out",
      me: "Me", step_phone: "Phone", step_identity: "Real name", step_card: "Bank card",
      bind_phone: "Bind phone", phone_bound: "Phone bound", name: "Full name", id_number: "Resident ID number",
      verify_id: "Verify my identity", identity_ok: "Identity verified", card_number: "Debit card number",
      add_card: "Add card", card_added: "Card added", cards: "Bank cards",
      verified: "Verified", credit_line: "My credit line", no_line: "No credit line yet: apply for a product to get one.",
      limit: "Credit limit", available: "Available", see_products: "See loan products",
      products: "Loan products", apr_label: "Annual rate (all-in, fees included)", your_apr: "Your annual rate",
      amount_range: "Amount", terms: "Terms", months: (n) => `${n} months`, methods: "Repayment",
      your_offer: (a, m) => `You can borrow up to ${m} at ${a} a year`, apply: "Apply", business_code: "Unified social credit code (business loans)",
      apply_title: "Apply", amount: "Amount (CNY)", term: "Term", purpose: "Purpose",
      income: "Monthly income (CNY)", expenses: "Monthly expenses (CNY)", assets: "Assets (CNY)", debt: "Debt (CNY)",
      job_type: "Job type", seniority: "Years in current job", home: "Home", submit_apply: "Submit application",
      job_fixed: "Permanent job", job_freelance: "Freelance", job_partime: "Part-time", job_others: "Other",
      home_owner: "Own home", home_rent: "Renting", home_parents: "With parents", home_priv: "Employer housing", home_other: "Other",
      decision: "Decision", reasons: "Reasons", credit_limit: "Credit limit", model: "Model version", decided_at: "Decided at",
      draw_now: "Borrow now", app_approved: "Approved", app_declined: "Declined", app_review: "In review",
      draw: "Borrow", no_application: "Apply for a credit line first.", draw_amount: "How much (CNY)",
      draw_hint: (a, lo, hi) => `Available ${a}; this product ${lo}–${hi}`, method: "Repayment method",
      m_equal_installment: "Equal installments", m_equal_principal: "Equal principal", m_interest_first: "Interest first",
      card: "Pay out to", when: "When the money arrives", now: "Now", later: "At a time I choose",
      later_at: "Time (Beijing time, within 7 days)", confirm_draw: "Confirm loan",
      loans: "My loans", no_loans: "No loans yet.", view: "View",
      loan: "Loan", principal: "Principal", outstanding: "Principal outstanding", total_interest: "Total interest",
      total_repayment: "Total repayment", term_n: "Installments", disburse_at: "Pay-out time", disbursed_at: "Paid out",
      s_scheduled: "Scheduled", s_disbursing: "Paying out", s_active: "Active", s_overdue: "Overdue",
      s_closed: "Closed", s_cancelled: "Cancelled", s_failed: "Pay-out failed",
      i_pending: "Pending", i_partially_paid: "Part paid", i_paid: "Paid", i_overdue: "Overdue",
      scheduled_note: "You can cancel free of charge until it is paid out. The schedule below is the preview.",
      cancel: "Cancel loan", cancelled: "Loan cancelled", schedule: "Schedule", col_n: "No.", col_due: "Due",
      col_total: "Due amount", col_paid: "Paid", col_status: "Status", col_sum: "Total",
      repay: "Repay", pay_next: (a) => `This installment ${a}`, pay_off: (a) => `Pay off everything ${a}`,
      pay_other: "Another amount", other_amount: "Amount (CNY)", payoff_detail: (p, i, f) => `principal ${p}, interest ${i}, penalty ${f}; no early-repayment fee`,
      submit_repay: "Repay", repaid: (a, f, i, p) => `Paid ${a}: penalty ${f}, interest ${i}, principal ${p}`,
      amount_invalid: "Enter an amount such as 1000 or 1000.50 (at most two decimals).",
      statement: "Statement and check", statement_link: "Statement and check",
      verified_ok: (n, m) => `Checked: the hash chain of ${n} entries is whole and ${m} daily anchor proofs hold.`,
      verified_bad: "The check failed:", verify_note: "This page recomputes every entry and proof with SHA-256 on your device. To prove nothing was rewritten, compare each day's root with one you saved or the lender published (docs/LEDGER.md).",
      entries: "Entries", anchors: "Daily anchors", col_at: "Time", col_kind: "Kind", col_amount: "Amount",
      k_disbursement: "Pay-out", k_repayment: "Repayment", k_penalty: "Penalty",
      inbox: "Inbox", no_messages: "No messages.",
      report: "Credit report", report_link: "See my credit report", grade: "Credit grade", no_grade: "No grade yet: it comes with your first application.",
      grade_note: "A is the lowest risk and E the highest, from your latest decision.", helps: "What helps", hurts: "What hurts",
      record: "My record", h_applications: "Applications", h_approved: "Approved", h_loans: "Loans",
      h_installments_on_time: "Installments paid on time", h_installments_late: "Installments overdue", h_max_days_past_due: "Most days past due",
      as_of: "As of",
      n_due_soon: "Due soon", n_due_today: "Due today", n_overdue: "Overdue", n_disbursed: "Paid out",
      n_disbursement_failed: "Pay-out failed", n_repayment_received: "Payment received", n_loan_closed: "Loan closed",
    },
  };
  const store = window.localStorage;
  const session = window.sessionStorage;
  let lang = store.getItem("lending.lang") === "en" ? "en" : "zh";
  const t = (key, ...args) => {
    const word = WORDS[lang][key] ?? WORDS.zh[key] ?? key;
    return typeof word === "function" ? word(...args) : word;
  };
  const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const $ = (selector, root = document) => root.querySelector(selector);

  // ---------------------------------------------------------------- money, rates, times
  /** 123456 fen -> "¥1,234.56" (integer arithmetic only). */
  function yuan(fen) {
    const sign = fen < 0 ? "-" : "";
    const abs = Math.abs(fen);
    const whole = String(Math.floor(abs / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return `${sign}¥${whole}.${String(abs % 100).padStart(2, "0")}`;
  }
  /** "1234.5" -> 123450 fen, parsed as text; null when it is not an amount. */
  function parseYuan(text) {
    const match = /^\s*(\d{1,10})(?:\.(\d{1,2}))?\s*$/.exec(String(text).replace(/,/g, ""));
    if (!match) return null;
    return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
  }
  /** The API's decimal rate "0.1825" -> "18.25%", by moving the decimal point in the text. */
  function pct(rate) {
    const [whole, frac = ""] = String(rate).split(".");
    const digits = frac.padEnd(2, "0");
    const head = String(Number(whole + digits.slice(0, 2)));
    const tail = digits.slice(2).replace(/0+$/, "");
    return `${head}${tail ? "." + tail : ""}%`;
  }
  const when = (iso) => (iso ? String(iso).replace("T", " ").replace(/(:\d\d)(\.\d+)?\+08:00$/, "$1") : "—");

  // The service's clock: every API answer's Date header is stamped on it (API Gateway's is
  // AWS's clock, the local stack's is its own clock, which `make jobs AT=` moves ahead of this
  // device's), so the disbursement picker starts from the service's now, not from Date.now().
  let clockSkew = 0;
  function noteServerClock(response) {
    const stamped = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(stamped)) clockSkew = stamped - Date.now();
  }
  /** Beijing wall time "YYYY-MM-DDTHH:MM" of the service's now + ms. */
  function beijing(ms) {
    return new Date(Date.now() + clockSkew + ms + 8 * 3600e3).toISOString().slice(0, 16);
  }

  // ---------------------------------------------------------------- the API
  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }
  const K = { access: "lending.access", refresh: "lending.refresh", user: "lending.user" };
  const signedIn = () => Boolean(session.getItem(K.access));

  function newKey() {
    if (window.crypto.randomUUID) return window.crypto.randomUUID();
    return Array.from(window.crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function api(method, path, body, opts = {}) {
    const headers = { "Accept-Language": lang === "en" ? "en" : "zh-CN" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = session.getItem(K.access);
    if (token && !opts.anonymous) headers.Authorization = `Bearer ${token}`;
    if (opts.key) headers["Idempotency-Key"] = opts.key;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError(0, "NETWORK", t("network"));
    }
    noteServerClock(response);
    if (response.status === 401 && token && !opts.anonymous && !opts.retried && await refresh()) {
      return api(method, path, body, { ...opts, retried: true });
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      if (response.status === 401 && token && !opts.anonymous) forget();
      let message = error.message || t("failed");
      const wait = response.headers.get("Retry-After");
      if (response.status === 429 && wait) message += lang === "en" ? ` (${wait} s)` : `（${wait} 秒后）`;
      throw new ApiError(response.status, error.code || `HTTP_${response.status}`, message);
    }
    return data;
  }

  async function refresh() {
    const token = session.getItem(K.refresh);
    if (!token) return false;
    try {
      remember(await api("POST", "/v1/auth/refresh", { refresh_token: token }, { anonymous: true }));
      return true;
    } catch (err) {
      return false;
    }
  }
  function remember(tokens) {
    session.setItem(K.access, tokens.access_token);
    session.setItem(K.refresh, tokens.refresh_token);
    session.setItem(K.user, tokens.user_id);
  }
  function forget() { Object.values(K).forEach((k) => session.removeItem(k)); }

  /** The approved application that set this user's line (the API draws only on that one). */
  const lineKey = () => `lending.line.${session.getItem(K.user)}`;
  const savedLine = () => JSON.parse(store.getItem(lineKey()) || "null");

  // ---------------------------------------------------------------- forms
  const errorSlot = '<p class="error" role="alert" tabindex="-1" hidden></p>';

  function showError(form, err) {
    const slot = $(".error", form);
    slot.textContent = err.message;
    slot.hidden = false;
    slot.focus();
  }

  /** Submit handling: one request at a time, the API's message beside the form, and an
   * Idempotency-Key that survives retries of the same input and changes with the input. */
  function onSubmit(form, handler) {
    form.addEventListener("input", () => { delete form.dataset.key; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await busy(form, event.submitter || $("button[type=submit]", form), () => {
        if (!form.dataset.key) form.dataset.key = newKey();
        return handler(new FormData(form), form.dataset.key);
      });
    });
  }
  function onClick(button, form, handler) {
    button.addEventListener("click", () => busy(form, button, handler));
  }
  async function busy(form, button, work) {
    const slot = $(".error", form);
    slot.hidden = true;
    slot.textContent = "";
    if (button) button.disabled = true;
    try {
      await work();
    } catch (err) {
      if (!(err instanceof ApiError)) console.error(err);
      showError(form, err instanceof ApiError ? err : new Error(t("failed")));
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  }
  function fen(value) {
    const amount = parseYuan(value);
    if (amount === null) throw new ApiError(0, "AMOUNT_INVALID", t("amount_invalid"));
    return amount;
  }
  let flash = "";  // a note for the next screen: what just succeeded (or the sign-in that did not)
  let flashIsError = false;
  function announce(text) { $("#status").textContent = text; setTimeout(() => { $("#status").textContent = ""; }, 4000); }

  const field = (id, label, attrs = "", hint = "") => `
    <label for="${id}">${esc(label)}</label>
    <input id="${id}" name="${id}" ${attrs}${hint ? ` aria-describedby="${id}-hint"` : ""}>
    ${hint ? `<p class="muted" id="${id}-hint">${esc(hint)}</p>` : ""}`;
  const select = (id, label, options, chosen) => `
    <label for="${id}">${esc(label)}</label>
    <select id="${id}" name="${id}">${options.map(([value, text]) =>
      `<option value="${esc(value)}"${value === chosen ? " selected" : ""}>${esc(text)}</option>`).join("")}</select>`;
  const badge = (prefix, status) => `<span class="badge ${esc(status)}">${esc(t(prefix + status))}</span>`;
  const aprBlock = (label, text) => `<p class="apr-label">${esc(label)}</p><p class="apr">${esc(text)}</p>`;

  // ---------------------------------------------------------------- screens
  async function loginView(main) {
    main.innerHTML = `
      <h1>${t("login")}</h1>
      <section class="card" aria-labelledby="wx-title">
        <h2 id="wx-title">${t("wx_title")}</h2>
        <form id="wx" novalidate>
          ${field("wx-code", t("wx_code"), 'autocomplete="off" required', t("wx_hint"))}
          ${errorSlot}
          <button class="primary" type="submit">${t("wx_go")}</button>
        </form>
      </section>
      <section class="card" aria-labelledby="sms-title">
        <h2 id="sms-title">${t("sms_title")}</h2>
        <form id="sms" novalidate>
          ${field("sms-phone", t("phone"), 'inputmode="tel" autocomplete="tel" required')}
          <button type="button" id="sms-send">${t("send_code")}</button>
          ${field("sms-code", t("code"), 'inputmode="numeric" autocomplete="one-time-code" maxlength="6" required')}
          ${errorSlot}
          <button class="primary" type="submit">${t("sms_go")}</button>
        </form>
      </section>`;
    onSubmit(main.querySelector("#wx"), async (data) => {
      signIn(await api("POST", "/v1/auth/wechat", { code: data.get("wx-code").trim() }, { anonymous: true }));
    });
    onClick(main.querySelector("#sms-send"), main.querySelector("#sms"), async () => {
      const sent = await api("POST", "/v1/auth/sms-codes", { phone: main.querySelector("#sms-phone").value.trim() }, { anonymous: true });
      announce(t("code_sent", sent.expires_in));
      main.querySelector("#sms-code").focus();
    });
    onSubmit(main.querySelector("#sms"), async (data) => {
      signIn(await api("POST", "/v1/auth/sms-login",
        { phone: data.get("sms-phone").trim(), code: data.get("sms-code").trim() }, { anonymous: true }));
    });
  }
  function signIn(tokens) {
    remember(tokens);
    flash = t("signed_in");
    location.hash = "#/me";
  }

  async function meView(main) {
    const me = await api("GET", "/v1/me");
    const steps = [["phone", Boolean(me.phone_masked)], ["identity", me.identity_verified],
      ["card", me.bank_cards.length > 0]];
    const next = steps.find(([, done]) => !done);
    const stepList = `<ol class="steps" aria-label="${esc(t("me"))}">${steps.map(([name, done]) =>
      `<li class="${done ? "done" : ""}"${next && next[0] === name ? ' aria-current="step"' : ""}>${t("step_" + name)}</li>`).join("")}</ol>`;
    const cards = me.bank_cards.map((c) => `<li>${esc(c.bank_name)} •••• ${esc(c.last4)}</li>`).join("");
    const credit = me.credit
      ? `${aprBlock(t("your_apr"), pct(me.credit.apr))}
         <dl class="facts"><dt>${t("limit")}</dt><dd>${yuan(me.credit.limit)}</dd>
         <dt>${t("available")}</dt><dd>${yuan(me.credit.available)}</dd></dl>
         ${savedLine() ? `<a href="#/draw">${t("draw_now")}</a>` : ""}`
      : `<p>${t("no_line")}</p>`;
    let form = "";
    if (next && next[0] === "phone") {
      form = `<form id="phone" class="card" novalidate><h2>${t("bind_phone")}</h2>
        ${field("bind-phone", t("phone"), 'inputmode="tel" autocomplete="tel" required')}
        <button type="button" id="bind-send">${t("send_code")}</button>
        ${field("bind-code", t("code"), 'inputmode="numeric" autocomplete="one-time-code" maxlength="6" required')}
        ${errorSlot}<button class="primary" type="submit">${t("bind_phone")}</button></form>`;
    } else if (next && next[0] === "identity") {
      form = `<form id="identity" class="card" novalidate><h2>${t("step_identity")}</h2>
        ${field("id-name", t("name"), 'autocomplete="name" required')}
        ${field("id-number", t("id_number"), 'autocomplete="off" maxlength="18" required')}
        ${errorSlot}<button class="primary" type="submit">${t("verify_id")}</button></form>`;
    }
    const cardForm = `<form id="card" class="card" novalidate><h2>${t("add_card")}</h2>
        ${field("card-number", t("card_number"), 'inputmode="numeric" autocomplete="cc-number" required')}
        ${errorSlot}<button class="primary" type="submit">${t("add_card")}</button></form>`;
    main.innerHTML = `
      <h1>${t("me")}</h1>${stepList}${form}
      ${next && next[0] === "card" ? cardForm : ""}
      <section class="card" aria-labelledby="line-title"><h2 id="line-title">${t("credit_line")}</h2>${credit}
        <p><a href="#/products">${t("see_products")}</a></p>
        <p><a href="#/report">${t("report_link")}</a></p></section>
      <section class="card" aria-labelledby="who"><h2 id="who">${t("me")}</h2>
        <dl class="facts"><dt>${t("phone")}</dt><dd>${esc(me.phone_masked || "—")}</dd>
        <dt>${t("step_identity")}</dt><dd>${me.identity_verified ? t("verified") : "—"}</dd></dl>
        ${cards ? `<h3>${t("cards")}</h3><ul class="plain">${cards}</ul>` : ""}
        <button type="button" id="sign-out">${t("sign_out")}</button></section>
      ${next ? "" : cardForm}`;
    main.querySelector("#sign-out").addEventListener("click", () => { forget(); location.hash = "#/login"; });
    if (main.querySelector("#phone")) {
      onClick(main.querySelector("#bind-send"), main.querySelector("#phone"), async () => {
        const sent = await api("POST", "/v1/auth/sms-codes", { phone: main.querySelector("#bind-phone").value.trim() }, { anonymous: true });
        announce(t("code_sent", sent.expires_in));
        main.querySelector("#bind-code").focus();
      });
      onSubmit(main.querySelector("#phone"), async (data) => {
        await api("POST", "/v1/me/phone", { phone: data.get("bind-phone").trim(), code: data.get("bind-code").trim() });
        flash = t("phone_bound");
        await render();
      });
    }
    if (main.querySelector("#identity")) {
      onSubmit(main.querySelector("#identity"), async (data) => {
        await api("POST", "/v1/me/identity", { name: data.get("id-name").trim(), id_number: data.get("id-number").trim().toUpperCase() });
        flash = t("identity_ok");
        await render();
      });
    }
    if (main.querySelector("#card")) {
      onSubmit(main.querySelector("#card"), async (data) => {
        await api("POST", "/v1/me/bank-cards", { card_number: data.get("card-number").replace(/\s+/g, "") });
        flash = t("card_added");
        await render();
      });
    }
  }

  const methodName = (m) => t("m_" + m);

  async function productsView(main) {
    const [catalog, offers] = await Promise.all([
      api("GET", "/v1/products", undefined, { anonymous: true }),
      signedIn() ? api("GET", "/v1/me/offers") : { items: [] }]);
    const offerOf = Object.fromEntries(offers.items.map((o) => [o.product_id, o]));
    main.innerHTML = `<h1>${t("products")}</h1>${catalog.items.map((p) => {
      const offer = offerOf[p.product_id];
      const rate = offer ? pct(offer.apr) : `${pct(p.apr_min)} – ${pct(p.apr_max)}`;
      return `<article class="card" aria-labelledby="p-${esc(p.product_id)}">
        ${aprBlock(offer ? t("your_apr") : t("apr_label"), rate)}
        <h2 id="p-${esc(p.product_id)}">${esc(p.name)}</h2>
        <p class="muted">${esc(p.institution)}</p>
        <dl class="facts">
          <dt>${t("amount_range")}</dt><dd>${yuan(p.min_amount)} – ${yuan(p.max_amount)}</dd>
          <dt>${t("terms")}</dt><dd>${esc(p.term_months.join(" / "))} ${lang === "en" ? "months" : "个月"}</dd>
          <dt>${t("methods")}</dt><dd>${esc(p.repayment_methods.map(methodName).join("、"))}</dd>
        </dl>
        ${offer ? `<p class="ok">${esc(t("your_offer", pct(offer.apr), yuan(offer.max_amount)))}</p>` : ""}
        <a href="#/apply/${encodeURIComponent(p.product_id)}" aria-label="${esc(t("apply") + " " + p.name)}">${t("apply")}</a>
      </article>`;
    }).join("")}`;
  }

  async function applyView(main, productId) {
    const catalog = await api("GET", "/v1/products", undefined, { anonymous: true });
    const product = catalog.items.find((p) => p.product_id === productId);
    if (!product) throw new ApiError(404, "PRODUCT_NOT_FOUND", t("failed"));
    const jobs = ["fixed", "freelance", "partime", "others"].map((j) => [j, t("job_" + j)]);
    const homes = ["owner", "rent", "parents", "priv", "other"].map((h) => [h, t("home_" + h)]);
    main.innerHTML = `<h1>${t("apply_title")}</h1>
      <p class="muted">${esc(product.name)} · ${t("apr_label")} ${pct(product.apr_min)} – ${pct(product.apr_max)}</p>
      <form id="apply" class="card" novalidate>
        ${field("amount", t("amount"), 'inputmode="decimal" required', `${yuan(product.min_amount)} – ${yuan(product.max_amount)}`)}
        ${select("term", t("term"), product.term_months.map((n) => [String(n), t("months", n)]), String(product.term_months[product.term_months.length - 1]))}
        ${field("purpose", t("purpose"), 'maxlength="200" required')}
        ${field("income", t("income"), 'inputmode="decimal" required')}
        ${field("expenses", t("expenses"), 'inputmode="decimal" required')}
        ${field("assets", t("assets"), 'inputmode="decimal" required')}
        ${field("debt", t("debt"), 'inputmode="decimal" required')}
        ${select("job", t("job_type"), jobs, "fixed")}
        ${field("seniority", t("seniority"), 'inputmode="numeric" required')}
        ${select("home", t("home"), homes, "rent")}
        ${product.kind === "business_loan" ? field("business", t("business_code"), 'maxlength="18" autocomplete="off"') : ""}
        ${errorSlot}
        <button class="primary" type="submit">${t("submit_apply")}</button>
      </form>`;
    onSubmit(main.querySelector("#apply"), async (data, key) => {
      const body = {
        product_id: product.product_id, amount: fen(data.get("amount")), term_months: Number(data.get("term")),
        purpose: data.get("purpose").trim(),
        applicant: {
          monthly_income: fen(data.get("income")), monthly_expenses: fen(data.get("expenses")),
          assets: fen(data.get("assets")), debt: fen(data.get("debt")), job_type: data.get("job"),
          job_seniority_years: Number.parseInt(data.get("seniority"), 10) || 0, home: data.get("home"),
        },
      };
      if (data.get("business")) body.business_credit_code = data.get("business").trim().toUpperCase();
      const decided = await api("POST", "/v1/applications", body, { key });
      if (decided.status === "approved") {
        store.setItem(lineKey(), JSON.stringify({ application_id: decided.application_id, product_id: product.product_id }));
      }
      location.hash = `#/applications/${encodeURIComponent(decided.application_id)}`;
    });
  }

  async function decisionView(main, applicationId) {
    const decided = await api("GET", `/v1/applications/${encodeURIComponent(applicationId)}`);
    const reasons = decided.reasons.map((r) => `<li>${esc(r.message)} <span class="muted">(${esc(r.code)})</span></li>`).join("");
    main.innerHTML = `<h1>${t("decision")}</h1>
      <section class="card">
        <p>${badge("app_", decided.status)}</p>
        ${decided.status === "approved" ? `${aprBlock(t("your_apr"), pct(decided.apr))}
          <dl class="facts"><dt>${t("credit_limit")}</dt><dd>${yuan(decided.credit_limit)}</dd></dl>` : ""}
        ${reasons ? `<h2>${t("reasons")}</h2><ul>${reasons}</ul>` : ""}
        <dl class="facts"><dt>${t("decided_at")}</dt><dd>${esc(when(decided.decided_at))}</dd>
        <dt>${t("model")}</dt><dd>${esc(decided.model_version)}</dd></dl>
        ${decided.status === "approved" ? `<p><a href="#/draw">${t("draw_now")}</a></p>` : ""}
      </section>`;
  }

  async function drawView(main) {
    const line = savedLine();
    if (!line) {
      main.innerHTML = `<h1>${t("draw")}</h1><p>${t("no_application")} <a href="#/products">${t("see_products")}</a></p>`;
      return;
    }
    const [me, catalog] = await Promise.all([api("GET", "/v1/me"), api("GET", "/v1/products", undefined, { anonymous: true })]);
    const product = catalog.items.find((p) => p.product_id === line.product_id);
    const available = me.credit ? me.credit.available : 0;
    const methods = product.repayment_methods.map((m, i) => `<label class="choice"><input type="radio" name="method" value="${esc(m)}"${i ? "" : " checked"}> ${esc(methodName(m))}</label>`).join("");
    main.innerHTML = `<h1>${t("draw")}</h1>
      ${me.credit ? aprBlock(t("your_apr"), pct(me.credit.apr)) : ""}
      <form id="draw" class="card" novalidate>
        ${field("amount", t("draw_amount"), 'inputmode="decimal" required', t("draw_hint", yuan(available), yuan(product.min_amount), yuan(product.max_amount)))}
        ${select("term", t("term"), product.term_months.map((n) => [String(n), t("months", n)]), String(product.term_months[product.term_months.length - 1]))}
        <fieldset><legend>${t("method")}</legend>${methods}</fieldset>
        ${select("card", t("card"), me.bank_cards.map((c) => [c.card_id, `${c.bank_name} •••• ${c.last4}`]), me.bank_cards[0] && me.bank_cards[0].card_id)}
        <fieldset><legend>${t("when")}</legend>
          <label class="choice"><input type="radio" name="when" value="now" checked> ${t("now")}</label>
          <label class="choice"><input type="radio" name="when" value="later"> ${t("later")}</label>
          <label for="at">${t("later_at")}</label>
          <input id="at" name="at" type="datetime-local" disabled>
        </fieldset>
        ${errorSlot}
        <button class="primary" type="submit">${t("confirm_draw")}</button>
      </form>`;
    const at = main.querySelector("#at");
    at.min = beijing(5 * 60e3);
    at.max = beijing(7 * 86400e3 - 60e3);
    at.value = `${beijing(86400e3).slice(0, 10)}T09:00`;
    main.querySelectorAll("input[name=when]").forEach((radio) => radio.addEventListener("change", () => {
      at.disabled = main.querySelector("input[name=when]:checked").value !== "later";
    }));
    onSubmit(main.querySelector("#draw"), async (data, key) => {
      const body = {
        application_id: line.application_id, amount: fen(data.get("amount")), term_months: Number(data.get("term")),
        repayment_method: data.get("method"), bank_card_id: data.get("card"),
      };
      if (data.get("when") === "later") body.disburse_at = `${at.value}:00+08:00`;
      const loan = await api("POST", "/v1/loans", body, { key });
      location.hash = `#/loans/${encodeURIComponent(loan.loan_id)}`;
    });
  }

  async function loansView(main) {
    const { items } = await api("GET", "/v1/loans");
    main.innerHTML = `<h1>${t("loans")}</h1>${items.length ? "" : `<p>${t("no_loans")}</p>`}
      ${items.map((loan) => `<article class="card" aria-labelledby="l-${esc(loan.loan_id)}">
        <p>${badge("s_", loan.status)}</p>
        ${aprBlock(t("your_apr"), pct(loan.apr))}
        <h2 id="l-${esc(loan.loan_id)}" class="big">${yuan(loan.principal)} · ${esc(t("months", loan.term_months))}</h2>
        <dl class="facts"><dt>${t("outstanding")}</dt><dd>${yuan(loan.outstanding_principal)}</dd>
        <dt>${t("total_repayment")}</dt><dd>${yuan(loan.total_repayment)}</dd></dl>
        <a href="#/loans/${encodeURIComponent(loan.loan_id)}" aria-label="${esc(t("view"))} ${yuan(loan.principal)}">${t("view")}</a>
      </article>`).join("")}`;
  }

  async function loanView(main, loanId) {
    const path = `/v1/loans/${encodeURIComponent(loanId)}`;
    const loan = await api("GET", path);
    const live = loan.status === "active" || loan.status === "overdue";
    const payoff = live ? await api("GET", `${path}/payoff`) : null;
    const next = loan.schedule.find((i) => i.status !== "paid");
    const nextDue = next ? next.total - next.paid : 0;
    const rows = loan.schedule.map((i) => `<tr><td>${i.installment}</td><td>${esc(i.due_date)}</td>
      <td>${yuan(i.total)}</td><td>${yuan(i.paid)}</td><td>${badge("i_", i.status)}</td></tr>`).join("");
    main.innerHTML = `<h1>${t("loan")}</h1>
      <section class="card">
        <p>${badge("s_", loan.status)}</p>
        ${aprBlock(t("your_apr"), pct(loan.apr))}
        <dl class="facts">
          <dt>${t("total_repayment")}</dt><dd class="big">${yuan(loan.total_repayment)}</dd>
          <dt>${t("principal")}</dt><dd>${yuan(loan.principal)}</dd>
          <dt>${t("total_interest")}</dt><dd>${yuan(loan.total_interest)}</dd>
          <dt>${t("outstanding")}</dt><dd>${yuan(loan.outstanding_principal)}</dd>
          <dt>${t("method")}</dt><dd>${esc(methodName(loan.repayment_method))}</dd>
          <dt>${t("term_n")}</dt><dd>${loan.term_months}</dd>
          <dt>${t("disburse_at")}</dt><dd>${esc(when(loan.disburse_at))}</dd>
          ${loan.disbursed_at ? `<dt>${t("disbursed_at")}</dt><dd>${esc(when(loan.disbursed_at))}</dd>` : ""}
        </dl>
        ${loan.status_reason ? `<p class="error">${esc(loan.status_reason.message)}</p>` : ""}
        ${loan.status === "scheduled" ? `<form id="cancel" novalidate><p>${t("scheduled_note")}</p>${errorSlot}
          <button type="submit" class="danger">${t("cancel")}</button></form>` : ""}
      </section>
      ${live ? `<form id="repay" class="card" novalidate><h2>${t("repay")}</h2>
        <fieldset><legend>${t("repay")}</legend>
          ${next ? `<label class="choice"><input type="radio" name="what" value="next" checked> ${esc(t("pay_next", yuan(nextDue)))}</label>` : ""}
          <label class="choice"><input type="radio" name="what" value="payoff"${next ? "" : " checked"}> ${esc(t("pay_off", yuan(payoff.amount)))}</label>
          <p class="muted">${esc(t("payoff_detail", yuan(payoff.principal), yuan(payoff.interest), yuan(payoff.penalty)))}</p>
          <label class="choice"><input type="radio" name="what" value="other"> ${t("pay_other")}</label>
          ${field("other", t("other_amount"), 'inputmode="decimal"')}
        </fieldset>
        ${errorSlot}<button class="primary" type="submit">${t("submit_repay")}</button></form>` : ""}
      ${loan.schedule.length ? `<section class="card"><table><caption>${t("schedule")}</caption>
        <thead><tr><th scope="col">${t("col_n")}</th><th scope="col">${t("col_due")}</th><th scope="col">${t("col_total")}</th>
        <th scope="col">${t("col_paid")}</th><th scope="col">${t("col_status")}</th></tr></thead>
        <tbody>${rows}</tbody>
        <tfoot><tr><th scope="row">${t("col_sum")}</th><td></td><td>${yuan(loan.total_repayment)}</td><td></td><td></td></tr></tfoot>
        </table></section>` : ""}
      ${loan.disbursed_at ? `<p><a href="#/loans/${encodeURIComponent(loanId)}/statement">${t("statement_link")}</a></p>` : ""}`;
    if (main.querySelector("#cancel")) {
      onSubmit(main.querySelector("#cancel"), async () => {
        await api("POST", `${path}/cancel`);
        flash = t("cancelled");
        await render();
      });
    }
    if (main.querySelector("#repay")) {
      onSubmit(main.querySelector("#repay"), async (data, key) => {
        const what = data.get("what");
        const amount = what === "next" ? nextDue : what === "payoff" ? payoff.amount : fen(data.get("other"));
        const paid = await api("POST", `${path}/repayments`, { amount }, { key });
        const a = paid.allocation;
        flash = t("repaid", yuan(paid.amount), yuan(a.penalty), yuan(a.interest), yuan(a.principal));
        await render();
      });
    }
  }

  // ------------------------------------------ the statement, checked on the device
  // The rules of docs/LEDGER.md, a third implementation beside the server's and
  // tools/verify_statement.py: canonical JSON, the chain, balance, and each day's Merkle proof.
  async function sha256(text) {
    const digest = await window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function canonical(value) {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value && typeof value === "object") {
      return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
    }
    if (Number.isSafeInteger(value) || typeof value === "string") return JSON.stringify(value);
    throw new Error("no canonical form");
  }
  async function checkStatement(statement) {
    const problems = [];
    let previous = "0".repeat(64);
    for (const [index, e] of statement.entries.entries()) {
      const body = { amount: e.amount, at: e.at, entry_id: e.entry_id, kind: e.kind, loan_id: statement.loan_id, seq: e.seq,
        lines: e.lines.map((l) => ({ account: l.account, credit: l.credit, debit: l.debit })) };
      if (e.seq !== index + 1) problems.push(`${e.entry_id}: seq ${e.seq}`);
      if (e.prev_hash !== previous) problems.push(`${e.entry_id}: prev_hash`);
      if (await sha256(e.prev_hash + canonical(body)) !== e.hash) problems.push(`${e.entry_id}: hash`);
      const debit = e.lines.reduce((s, l) => s + l.debit, 0);
      const credit = e.lines.reduce((s, l) => s + l.credit, 0);
      if (debit !== credit || debit !== e.amount) problems.push(`${e.entry_id}: balance`);
      previous = e.hash;
    }
    if (statement.head !== (statement.entries.length ? previous : statement.head)) problems.push("head");
    for (const anchor of statement.anchors) {
      const entry = statement.entries[anchor.seq - 1];
      const after = statement.entries[anchor.seq];
      if (!entry || entry.hash !== anchor.head || entry.at.slice(0, 10) > anchor.date
          || (after && after.at.slice(0, 10) <= anchor.date)) problems.push(`${anchor.date}: head`);
      let node = await sha256(`leaf:${statement.loan_id}:${anchor.head}`);
      for (const step of anchor.proof) {
        node = await sha256(step.side === "left" ? `node:${step.hash}${node}` : `node:${node}${step.hash}`);
      }
      if (node !== anchor.root) problems.push(`${anchor.date}: proof`);
    }
    return problems;
  }

  async function statementView(main, loanId) {
    const statement = await api("GET", `/v1/loans/${encodeURIComponent(loanId)}/statement`);
    const problems = await checkStatement(statement);
    const kind = (k) => (WORDS.zh["k_" + k] ? t("k_" + k) : k);
    main.innerHTML = `<h1>${t("statement")}</h1>
      ${problems.length
        ? `<div class="error" id="verdict"><p>${t("verified_bad")}</p><ul>${problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul></div>`
        : `<p class="ok" id="verdict">${esc(t("verified_ok", statement.entries.length, statement.anchors.length))}</p>`}
      <p class="muted">${t("verify_note")}</p>
      <section class="card"><table><caption>${t("entries")}</caption>
        <thead><tr><th scope="col">${t("col_at")}</th><th scope="col">${t("col_kind")}</th><th scope="col">${t("col_amount")}</th></tr></thead>
        <tbody>${statement.entries.map((e) => `<tr><td>${esc(when(e.at))}</td><td>${esc(kind(e.kind))}</td><td>${yuan(e.amount)}</td></tr>`).join("")}</tbody>
      </table></section>
      ${statement.anchors.length ? `<section class="card"><h2>${t("anchors")}</h2><ul class="plain">${statement.anchors.map((a) =>
        `<li>${esc(a.date)} <span class="hash">${esc(a.root)}</span></li>`).join("")}</ul></section>` : ""}
      <p><a href="#/loans/${encodeURIComponent(loanId)}">${t("loan")}</a></p>`;
  }

  async function reportView(main) {
    const report = await api("GET", "/v1/me/credit-report");
    const list = (direction) => report.factors.filter((f) => f.direction === direction)
      .map((f) => `<li>${esc(f.message)}</li>`).join("");
    const helps = list("helps");
    const hurts = list("hurts");
    const history = Object.entries(report.history)
      .map(([key, value]) => `<dt>${t("h_" + key)}</dt><dd>${esc(value)}</dd>`).join("");
    main.innerHTML = `<h1>${t("report")}</h1>
      <section class="card" aria-labelledby="grade-title"><h2 id="grade-title">${t("grade")}</h2>
        ${report.grade ? `<p class="apr">${esc(report.grade)}</p><p class="muted">${t("grade_note")}</p>` : `<p>${t("no_grade")}</p>`}
        ${report.credit ? `${aprBlock(t("your_apr"), pct(report.credit.apr))}<dl class="facts">
          <dt>${t("limit")}</dt><dd>${yuan(report.credit.limit)}</dd>
          <dt>${t("available")}</dt><dd>${yuan(report.credit.available)}</dd></dl>` : ""}
        ${report.decided_at ? `<p class="muted">${t("decided_at")} ${esc(when(report.decided_at))}</p>` : ""}
      </section>
      ${hurts ? `<section class="card" aria-labelledby="hurts-title"><h2 id="hurts-title">${t("hurts")}</h2><ul>${hurts}</ul></section>` : ""}
      ${helps ? `<section class="card" aria-labelledby="helps-title"><h2 id="helps-title">${t("helps")}</h2><ul>${helps}</ul></section>` : ""}
      <section class="card" aria-labelledby="record-title"><h2 id="record-title">${t("record")}</h2>
        <dl class="facts">${history}</dl>
        <p class="muted">${t("as_of")} ${esc(when(report.as_of))}</p></section>`;
  }

  async function inboxView(main) {
    const { items } = await api("GET", "/v1/me/notifications");
    main.innerHTML = `<h1>${t("inbox")}</h1>${items.length ? "" : `<p>${t("no_messages")}</p>`}
      <ul class="plain card">${items.map((n) => `<li><strong>${esc(t("n_" + n.kind))}</strong>
        <span class="muted">${esc(when(n.created_at))}</span><br>${esc(n.text)}
        ${n.loan_id ? `<br><a href="#/loans/${encodeURIComponent(n.loan_id)}">${t("loan")}</a>` : ""}</li>`).join("")}</ul>`;
  }

  // ---------------------------------------------------------------- routing
  const ROUTES = [
    [/^#\/login$/, loginView, false], [/^#\/products$/, productsView, false],
    [/^#\/me$/, meView, true], [/^#\/apply\/([\w-]+)$/, applyView, true],
    [/^#\/applications\/([\w-]+)$/, decisionView, true], [/^#\/draw$/, drawView, true],
    [/^#\/loans$/, loansView, true], [/^#\/loans\/([\w-]+)$/, loanView, true],
    [/^#\/loans\/([\w-]+)\/statement$/, statementView, true], [/^#\/inbox$/, inboxView, true],
    [/^#\/report$/, reportView, true],
  ];
  const TABS = [["#/products", "tab_products"], ["#/loans", "tab_loans"], ["#/inbox", "tab_inbox"], ["#/me", "tab_me"]];

  // Each render draws into a fresh element and shows it only if no later render has started,
  // so a slow answer for a screen the borrower already left never replaces the current one.
  let generation = 0;
  async function render() {
    const mine = ++generation;
    const main = $("#main");
    let hash = location.hash || (signedIn() ? "#/me" : "#/login");
    let route = ROUTES.find(([pattern]) => pattern.test(hash));
    if (!route || (route[2] && !signedIn())) {
      hash = signedIn() ? "#/me" : "#/login";
      history.replaceState(null, "", hash);
      route = ROUTES.find(([pattern]) => pattern.test(hash));
    }
    chrome(hash);
    $("#status").textContent = "";  // a note about the last screen does not cover the next
    main.setAttribute("aria-busy", "true");
    const view = document.createElement("div");
    try {
      await route[1](view, ...route[0].exec(hash).slice(1).map(decodeURIComponent));
    } catch (err) {
      if (mine === generation && !signedIn() && route[2]) { location.hash = "#/login"; return; }
      view.innerHTML = `<h1>${t("failed")}</h1><p class="error" role="alert">${esc(err.message)}</p>`;
    }
    if (mine !== generation) return;
    main.replaceChildren(view);  // the view element itself: its handlers query inside it
    main.removeAttribute("aria-busy");
    if (flash) {
      const note = document.createElement("p");
      note.className = flashIsError ? "error" : "ok";
      note.setAttribute("role", flashIsError ? "alert" : "status");
      note.textContent = flash;
      $("h1", main).after(note);
      flash = "";
      flashIsError = false;
    }
    const title = $("h1", main);
    document.title = `${title ? title.textContent : ""} · ${t("brand")}`;
    main.focus();
  }

  function chrome(hash) {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    $("#brand").textContent = t("brand");
    $(".skip").textContent = t("skip");
    const toggle = $("#lang");
    toggle.textContent = t("other");
    toggle.lang = lang === "en" ? "zh-CN" : "en";
    const tabs = $("#tabs");
    tabs.hidden = !signedIn();
    tabs.setAttribute("aria-label", t("tabs"));
    tabs.innerHTML = TABS.map(([href, key]) =>
      `<a href="${href}"${hash.startsWith(href) ? ' aria-current="page"' : ""}>${t(key)}</a>`).join("");
  }

  async function start() {
    // The skip link moves focus only: its #main would otherwise be read as a route.
    $(".skip").addEventListener("click", (event) => { event.preventDefault(); $("#main").focus(); });
    $("#lang").addEventListener("click", () => {
      lang = lang === "en" ? "zh" : "en";
      store.setItem("lending.lang", lang);
      render();
    });
    window.addEventListener("hashchange", render);
    // A WeChat OAuth redirect lands here with ?code=...: sign in with it, then drop it from the URL.
    const code = new URLSearchParams(location.search).get("code");
    if (code) {
      history.replaceState(null, "", location.pathname + "#/me");
      try {
        remember(await api("POST", "/v1/auth/wechat", { code }, { anonymous: true }));
      } catch (err) {
        flash = err.message;
        flashIsError = true;
      }
    }
    await render();
  }
  start();
})();
