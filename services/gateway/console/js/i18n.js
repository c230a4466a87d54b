// Chinese and English. The first visit follows the browser (Chinese for a zh browser);
// the switch in the top bar is remembered. A missing key shows the key and a warning.
const LANG_KEY = "crm.console.lang";

const zh = {
  signin_tenant: "租户", signin_email: "电子邮箱", signin_password: "密码",
  signin_refused: "邮箱或密码错误，或尝试次数过多：请稍后再试。", signin_unavailable: "此网关暂不支持密码登录，请联系管理员。",
  signin_sso: "使用 {provider} 登录", signin_with_token: "用令牌登录", signin_token_summary: "使用访问令牌（脚本与开发）",
  sso_error: "单点登录未完成，请重试。", sso_error_state: "此次登录已失效（不是从本浏览器开始的），请重新登录。",
  sso_error_provider_error: "身份提供方拒绝了登录。", sso_error_no_tenant: "身份提供方没有告知您所属的租户。",
  sso_error_no_roles: "身份提供方没有授予您本平台的任何角色，请联系管理员。", sso_error_disabled: "您的账号已被停用。",
  sso_error_bad_id_token: "身份提供方的凭据未通过校验。", sso_error_code_refused: "身份提供方拒绝了授权码。",
  sso_error_no_id_token: "身份提供方没有返回 ID 令牌。", sso_error_provider_unreachable: "暂时无法连接身份提供方。",
  set_password_title: "设置密码", set_password_help: "为您的账号设置密码（至少 10 个字符）。设置后即自动登录。",
  new_password: "新密码", new_password_again: "再次输入新密码", set_password_submit: "设置密码并登录",
  passwords_differ: "两次输入的密码不一致。", password_set: "密码已设置，欢迎！", link_unusable: "此链接无效、已使用或已过期：请向管理员索取新链接。",
  nav_users: "用户", users_title: "用户", users_help: "可以登录控制台的人员及其角色。邀请或重置后会生成一次性链接，请发给对方。",
  users_invite: "邀请用户", users_invite_submit: "邀请", users_name: "姓名", users_roles: "角色", users_status: "状态",
  users_last_sign_in: "最近登录", users_none: "还没有用户：用“邀请用户”表格邀请第一位同事。", users_link: "一次性链接",
  users_invitation_link: "{email} 的邀请链接（{until} 前有效，只显示这一次）：", users_reset_link: "{email} 的密码重置链接（{until} 前有效，只显示这一次）：",
  users_change_roles: "修改角色", users_reset: "重置密码", users_new_invitation: "重新邀请", users_disable: "停用", users_enable: "启用",
  users_reset_confirm: "为 {email} 生成新的设置密码链接？其当前登录会话将结束。", users_disable_confirm: "停用 {email}？其登录会话立即结束。",
  users_locked_until: "（锁定至 {until}）", user_status_invited: "已邀请", user_status_active: "已启用", user_status_disabled: "已停用",
  role_admin: "管理员", role_manager: "经理", role_sales: "销售", role_support: "客服", role_marketing: "市场", role_viewer: "只读",
  copy: "复制", confirm: "确认", actions: "操作", list_separator: "、",
  brand: "客户运营平台", menu: "菜单", language: "语言", skip_to_content: "跳到正文",
  nav_customers: "客户", nav_pipeline: "销售管道", nav_service: "客户服务", nav_loyalty: "会员积分",
  nav_churn: "流失预警", nav_ops: "运维",
  sign_out: "退出", signed_in_as: "{subject}（{tenant}：{roles}）",
  signin_title: "登录", signin_token: "访问令牌", signin_submit: "登录",
  signin_help: "在本机生成令牌：make token ARGS=\"--tenant acme --roles admin\"，然后粘贴到这里。",
  signin_bad_token: "令牌无效或已过期：{reason}", signin_expired: "登录已过期，请重新登录。",
  error_network: "无法连接网关，请稍后重试。", error_forbidden: "您的角色无权执行此操作",
  error_not_found: "未找到（或不属于您的租户）。", error_conflict: "冲突：",
  error_stale: "其他人刚刚修改过，已重新加载最新数据。", error_rate_limited: "请求过于频繁，请稍后再试。",
  error_server: "服务暂时不可用", nothing_yet: "暂无数据", loading: "加载中…",
  cancel: "取消", save: "保存", create: "创建", close: "关闭", refresh: "刷新", load_more: "加载更多",
  type_to_confirm: "请输入“{text}”以确认", read_only: "只读：您的角色不能修改。",
  customers_title: "客户", search: "搜索", search_placeholder: "姓名、拼音、邮箱或电话",
  kind: "类型", kind_any: "全部", kind_person: "个人", kind_company: "企业", tag: "标签", owner: "负责人",
  name: "名称", email: "邮箱", phone: "电话", birthday: "生日", tags: "标签", registered: "注册时间",
  new_customer: "新建客户", edit_customer: "编辑客户", tags_hint: "用逗号分隔",
  duplicate_found: "可能是重复客户：", open_existing: "查看已有客户", register_anyway: "仍然创建",
  customer_created: "已创建客户。", customer_saved: "已保存。", results: "{count} 位客户",
  import_csv: "导入 CSV", import_file: "CSV 文件", import_start: "开始导入", import_status: "导入进度：{status}",
  import_report: "逐行报告",
  c360_profile: "资料", c360_key_contacts: "关键联系人", c360_consent: "授权",
  c360_timeline: "时间线", c360_risk: "流失风险", c360_sales: "销售", c360_service: "服务", c360_loyalty: "积分",
  as_of: "截至日期", as_of_now: "现在", timeline_kinds: "按类别筛选",
  kind_profile: "资料", kind_interactions: "互动", kind_orders: "订单与商机", kind_tickets: "工单",
  kind_points: "积分", kind_alerts: "预警",
  granted: "已同意", withdrawn: "已撤回", grant: "同意", withdraw: "撤回",
  add_tag: "添加标签", remove_tag: "移除标签 {tag}", change_owner: "更换负责人", new_owner: "新负责人 ID",
  log_interaction: "记录互动", channel: "渠道", direction: "方向", summary: "摘要",
  inbound: "呼入", outbound: "呼出",
  merge: "合并重复客户", merge_duplicate_id: "重复客户 ID", merge_confirm: "把 {duplicate} 合并到 {name}？此操作不可撤销。",
  erase: "删除个人数据", erase_confirm: "永久删除 {name} 的个人数据？此操作不可撤销。", erased: "个人数据已删除。",
  merged: "已合并。", risk_score: "风险分", risk_level: "等级", risk_reasons: "原因", risk_none: "目前没有风险原因。",
  risk_evidence: "相关事件", view_version: "视图版本 {version}，更新于 {at}", live: "自动更新",
  pipeline_title: "销售管道", move_to: "移动到", deal_moved: "已移动商机。", deal_conflict: "冲突：该商机已被他人移动，看板已刷新。",
  lost_reason: "丢单原因", funnel: "销售漏斗", my_tasks: "我的待办", due: "截止", amount: "金额",
  stage: "阶段", deals: "商机", deals_count: "{count} 个商机", probability: "赢率",
  service_title: "客户服务", ticket_queue: "工单队列", subject: "主题", priority: "优先级", status: "状态",
  sla_first_response: "首次响应", sla_resolution: "解决", overdue: "已超时", breached_only: "仅看已违约",
  follow_ups: "待回访投诉", complaints_open: "未结投诉", csat_nps: "满意度与 NPS", csat: "CSAT", nps: "NPS", compliance: "SLA 达成率",
  status_any: "全部状态",
  loyalty_title: "会员积分", member: "会员", member_id: "客户 ID", find_member: "查看会员", balance: "积分余额",
  tier: "等级", next_tier: "距下一等级", ledger: "积分明细", points: "积分", reason: "原因",
  programme_stats: "计划统计",
  churn_title: "流失预警", weekly_list: "本周风险名单", alerts: "预警", acknowledge: "确认", dismiss: "忽略",
  acknowledged: "已确认。", dismissed: "已忽略。", backtest: "回测", run_backtest: "运行回测",
  lift_by_decile: "分位提升度", decile: "分位", lift: "提升度", score: "分数", customer: "客户",
  from: "开始", to: "结束", level: "等级",
  revenue_at_risk: "风险收入", no_purchase_probability: "90 天内不再购买的概率", predicted_value: "预计一年价值",
  sort_by: "排序", by_revenue_at_risk: "按风险收入", by_score: "按风险分",
  ops_title: "运维", health: "服务健康", service: "服务", latency: "延迟", ready: "就绪",
  projection_lag: "投影延迟", lag_events: "滞后事件数", lag_seconds: "滞后秒数", stalled: "停滞",
  partitions: "分区", projector: "投影进程", restarts: "重启次数", last_error: "最近错误",
  services_ops: "各服务的发件箱、投影与死信", outbox_backlog: "发件箱积压", oldest_unpublished: "最早未发布",
  projection: "投影", lag_both: "滞后（事件 / 秒）", no_outbox: "不写事件", unmeasured: "未测得",
  not_rebuildable: "不可重建", not_rebuildable_note: "该消费者对事件的反应是写事件或发送消息：重建会对每个事件再做一次。",
  rebuild: "重建", rebuild_note: "新一代在后台从头读取，旧一代继续服务，追上后切换（与 crm rebuild 相同）。",
  rebuild_admin_note: "重建投影需要管理员角色。",
  rebuild_confirm: "从最早的消息重建 {projection} 投影？旧一代在重建期间继续服务。", rebuild_started: "{projection} 的重建已开始。",
  rebuild_running: "正在重建，完成前不能再次开始。",
  rebuild_read: "已读消息", dlq_messages: "死信数",
  ops_read_note: "发件箱积压、死信与重建需要管理员或经理角色。",
  yes: "是", no: "否",
};

const en = {
  signin_tenant: "Tenant", signin_email: "E-mail", signin_password: "Password",
  signin_refused: "Wrong e-mail or password, or too many attempts: try again later.", signin_unavailable: "This gateway cannot sign in with a password at the moment; ask your administrator.",
  signin_sso: "Sign in with {provider}", signin_with_token: "Sign in with the token", signin_token_summary: "Use an access token (scripts and development)",
  sso_error: "Single sign-on did not finish; please try again.", sso_error_state: "This sign-in expired or was not started in this browser; please sign in again.",
  sso_error_provider_error: "The identity provider refused the sign-in.", sso_error_no_tenant: "The identity provider did not say which tenant you belong to.",
  sso_error_no_roles: "The identity provider gave you no role on this platform; ask your administrator.", sso_error_disabled: "Your account is disabled.",
  sso_error_bad_id_token: "The identity provider's credential did not pass the checks.", sso_error_code_refused: "The identity provider refused the authorization code.",
  sso_error_no_id_token: "The identity provider sent no ID token.", sso_error_provider_unreachable: "The identity provider cannot be reached at the moment.",
  set_password_title: "Set your password", set_password_help: "Choose a password for your account (10 characters or more). You are signed in once it is set.",
  new_password: "New password", new_password_again: "New password again", set_password_submit: "Set password and sign in",
  passwords_differ: "The two passwords differ.", password_set: "Your password is set. Welcome!", link_unusable: "This link is unknown, used or expired: ask your administrator for a new one.",
  nav_users: "Users", users_title: "Users", users_help: "Who may sign in to the console, and in which roles. Inviting or resetting makes a one-time link to pass on.",
  users_invite: "Invite a user", users_invite_submit: "Invite", users_name: "Name", users_roles: "Roles", users_status: "Status",
  users_last_sign_in: "Last sign-in", users_none: "No users yet: invite the first colleague with the “Invite a user” form.", users_link: "One-time link",
  users_invitation_link: "Invitation link for {email} (valid until {until}, shown this once):", users_reset_link: "Password reset link for {email} (valid until {until}, shown this once):",
  users_change_roles: "Change roles", users_reset: "Reset password", users_new_invitation: "Invite again", users_disable: "Disable", users_enable: "Enable",
  users_reset_confirm: "Make a new link for {email} to set a password? Their sessions end.", users_disable_confirm: "Disable {email}? Their sessions end at once.",
  users_locked_until: "(locked until {until})", user_status_invited: "Invited", user_status_active: "Active", user_status_disabled: "Disabled",
  role_admin: "Admin", role_manager: "Manager", role_sales: "Sales", role_support: "Support", role_marketing: "Marketing", role_viewer: "Viewer",
  copy: "Copy", confirm: "Confirm", actions: "Actions", list_separator: ", ",
  brand: "Customer Platform", menu: "Menu", language: "Language", skip_to_content: "Skip to content",
  nav_customers: "Customers", nav_pipeline: "Pipeline", nav_service: "Service", nav_loyalty: "Loyalty",
  nav_churn: "Churn", nav_ops: "Ops",
  sign_out: "Sign out", signed_in_as: "{subject} ({tenant}: {roles})",
  signin_title: "Sign in", signin_token: "Access token", signin_submit: "Sign in",
  signin_help: "Make a token on this machine with make token ARGS=\"--tenant acme --roles admin\" and paste it here.",
  signin_bad_token: "The token is not valid or has expired: {reason}", signin_expired: "Your session expired; please sign in again.",
  error_network: "The gateway cannot be reached; try again shortly.", error_forbidden: "Your role may not do this",
  error_not_found: "Not found (or not in your tenant).", error_conflict: "Conflict:",
  error_stale: "Someone changed this a moment ago; the latest version is loaded.", error_rate_limited: "Too many requests; try again shortly.",
  error_server: "The service is unavailable at the moment", nothing_yet: "Nothing yet", loading: "Loading…",
  cancel: "Cancel", save: "Save", create: "Create", close: "Close", refresh: "Refresh", load_more: "Load more",
  type_to_confirm: "Type “{text}” to confirm", read_only: "Read only: your role cannot change this.",
  customers_title: "Customers", search: "Search", search_placeholder: "Name, pinyin, email or phone",
  kind: "Kind", kind_any: "Any", kind_person: "Person", kind_company: "Company", tag: "Tag", owner: "Owner",
  name: "Name", email: "Email", phone: "Phone", birthday: "Birthday", tags: "Tags", registered: "Registered",
  new_customer: "New customer", edit_customer: "Edit customer", tags_hint: "Separate with commas",
  duplicate_found: "This looks like a customer we have:", open_existing: "Open the existing customer", register_anyway: "Create anyway",
  customer_created: "Customer created.", customer_saved: "Saved.", results: "{count} customers",
  import_csv: "Import CSV", import_file: "CSV file", import_start: "Start import", import_status: "Import: {status}",
  import_report: "Per-row report",
  c360_profile: "Profile", c360_key_contacts: "Key contacts", c360_consent: "Consent",
  c360_timeline: "Timeline", c360_risk: "Churn risk", c360_sales: "Sales", c360_service: "Service", c360_loyalty: "Loyalty",
  as_of: "As of", as_of_now: "Now", timeline_kinds: "Filter by kind",
  kind_profile: "Profile", kind_interactions: "Interactions", kind_orders: "Orders and deals", kind_tickets: "Tickets",
  kind_points: "Points", kind_alerts: "Alerts",
  granted: "Granted", withdrawn: "Withdrawn", grant: "Grant", withdraw: "Withdraw",
  add_tag: "Add tag", remove_tag: "Remove tag {tag}", change_owner: "Change owner", new_owner: "New owner id",
  log_interaction: "Log interaction", channel: "Channel", direction: "Direction", summary: "Summary",
  inbound: "Inbound", outbound: "Outbound",
  merge: "Merge a duplicate", merge_duplicate_id: "Duplicate customer id", merge_confirm: "Merge {duplicate} into {name}? This cannot be undone.",
  erase: "Erase personal data", erase_confirm: "Erase the personal data of {name} for good? This cannot be undone.", erased: "Personal data erased.",
  merged: "Merged.", risk_score: "Score", risk_level: "Level", risk_reasons: "Reasons", risk_none: "No risk reasons at present.",
  risk_evidence: "Events behind it", view_version: "View version {version}, updated {at}", live: "Live",
  pipeline_title: "Pipeline", move_to: "Move to", deal_moved: "Deal moved.", deal_conflict: "Conflict: someone else moved this deal; the board is reloaded.",
  lost_reason: "Why was it lost?", funnel: "Funnel", my_tasks: "My tasks", due: "Due", amount: "Amount",
  stage: "Stage", deals: "Deals", deals_count: "{count} deals", probability: "Probability",
  service_title: "Service", ticket_queue: "Ticket queue", subject: "Subject", priority: "Priority", status: "Status",
  sla_first_response: "First response", sla_resolution: "Resolution", overdue: "overdue", breached_only: "Breached only",
  follow_ups: "Complaints awaiting a follow-up visit", complaints_open: "Open complaints", csat_nps: "CSAT and NPS", csat: "CSAT", nps: "NPS", compliance: "SLA compliance",
  status_any: "Any status",
  loyalty_title: "Loyalty", member: "Member", member_id: "Customer id", find_member: "Open member", balance: "Balance",
  tier: "Tier", next_tier: "To the next tier", ledger: "Ledger", points: "Points", reason: "Reason",
  programme_stats: "Programme statistics",
  churn_title: "Churn board", weekly_list: "This week's risk list", alerts: "Alerts", acknowledge: "Acknowledge", dismiss: "Dismiss",
  acknowledged: "Acknowledged.", dismissed: "Dismissed.", backtest: "Backtest", run_backtest: "Run backtest",
  lift_by_decile: "Lift by decile", decile: "Decile", lift: "Lift", score: "Score", customer: "Customer",
  from: "From", to: "To", level: "Level",
  revenue_at_risk: "Revenue at risk", no_purchase_probability: "Chance of no purchase in 90 days", predicted_value: "Predicted value, a year",
  sort_by: "Sort", by_revenue_at_risk: "By revenue at risk", by_score: "By score",
  ops_title: "Ops", health: "Service health", service: "Service", latency: "Latency", ready: "Ready",
  projection_lag: "Projection lag", lag_events: "Events behind", lag_seconds: "Seconds behind", stalled: "Stalled",
  partitions: "Partitions", projector: "Projector", restarts: "Restarts", last_error: "Last error",
  services_ops: "Outbox, projections and dead letters per service", outbox_backlog: "Outbox backlog", oldest_unpublished: "Oldest unpublished",
  projection: "Projection", lag_both: "Lag (events / seconds)", no_outbox: "writes no events", unmeasured: "not measured",
  not_rebuildable: "not rebuildable", not_rebuildable_note: "This consumer reacts to events by writing events or sending messages: a rebuild would do so again for every event.",
  rebuild: "Rebuild", rebuild_note: "A new generation reads from the start in the background while the old one serves, and is swapped in once caught up (as crm rebuild).",
  rebuild_admin_note: "Rebuilding a projection needs the admin role.",
  rebuild_confirm: "Rebuild the {projection} projection from the earliest messages? The old generation serves meanwhile.", rebuild_started: "Rebuild of {projection} started.",
  rebuild_running: "A rebuild is running; another cannot start until it ends.",
  rebuild_read: "Messages read", dlq_messages: "Dead letters",
  ops_read_note: "Outbox backlogs, dead letters and rebuilds need the admin or manager role.",
  yes: "Yes", no: "No",
};

const DICTIONARIES = { zh, en };

export function lang() {
  const chosen = localStorage.getItem(LANG_KEY);
  if (chosen && DICTIONARIES[chosen]) return chosen;
  return (navigator.languages || [navigator.language]).some((l) => /^zh\b/i.test(l)) ? "zh" : "en";
}

export function setLang(value) {
  localStorage.setItem(LANG_KEY, value);
  applyStatic();
}

export function t(key, params = {}) {
  const text = DICTIONARIES[lang()][key];
  if (text === undefined) {
    console.warn(`console: no ${lang()} text for ${key}`);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

// The shell's fixed texts (data-i18n attributes in index.html).
export function applyStatic() {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  document.title = t("brand");
}

// Both dictionaries must have the same keys (checked by the browser tests).
export function missingKeys() {
  return Object.keys(zh).filter((k) => !(k in en)).concat(Object.keys(en).filter((k) => !(k in zh)));
}
