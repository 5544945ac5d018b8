// Chinese by default, English on request: one dictionary, text swapped in place.

const DICT = {
  zh: {
    title: '长治市城市运行指挥中心',
    subtitle: '综合态势一张图',
    login_title: '指挥大屏登录',
    username: '用户名',
    password: '密码',
    login: '登录',
    logout: '退出',
    wrong_password: '用户名或密码错误',
    session_expired: '登录已过期，请重新登录',
    login_failed: '登录失败：',
    layers: '图层',
    legend: '图例',
    live_layers: '实时设备',
    only_my_dept: '仅显示本部门',
    alarms: '实时告警',
    alarms_empty: '暂无未确认告警',
    ack: '确认',
    acked_by: '已由 {by} 确认',
    cleared: '已恢复',
    overview: '综合态势',
    units_online: '在线车辆',
    units_moving: '出动中',
    open_alarms: '未确认告警',
    sensors_offline: '离线设备',
    gauges_over: '超警戒水位站',
    chart_units: '车辆状态',
    chart_alarms: '近1小时告警（按类型）',
    chart_air: '各区县PM2.5（µg/m³）',
    chart_gauges: '超警戒水位站数量',
    ws_connecting: '正在连接实时数据…',
    ws_open: '实时数据已连接',
    ws_down: '实时连接中断，{s} 秒后自动重连（第 {n} 次）',
    ws_reconnecting: '正在重新连接实时数据…',
    ws_restored: '实时连接已恢复',
    ws_dropped: '网络拥塞，已丢弃 {n} 条事件',
    details: '详情',
    close: '关闭',
    last_reading: '最新读数',
    time: '时间',
    department: '部门',
    battery: '电量',
    signal: '信号',
    status: '状态',
    speed: '速度',
    heading: '航向',
    online: '在线',
    offline: '离线',
    stale: '数据超时',
    replay: '历史回放',
    live: '返回实时',
    replay_from: '开始',
    replay_to: '结束',
    replay_load: '载入',
    replay_loading: '正在载入轨迹…',
    replay_play: '播放',
    replay_pause: '暂停',
    replay_loaded: '已载入 {u} 辆车、{s} 个站点、{a} 条告警',
    replay_bad_window: '开始时间须早于结束时间',
    replay_alarms: '回放告警',
    replay_mode: '回放模式',
    report: '导出报告图',
    report_making: '正在生成报告图…',
    report_done: '报告图已下载',
    lang: 'EN',
    restricted: '受限',
    units: '辆',
    count: '数量',
    none: '无',
    'status.available': '待命',
    'status.dispatched': '已派车',
    'status.en_route': '途中',
    'status.on_scene': '到场',
    'status.out_of_service': '停用',
    'status.unknown': '未知',
    'unit.engine': '水罐消防车',
    'unit.ladder': '云梯车',
    'unit.rescue': '抢险救援车',
    'unit.hazmat': '危化品处置车',
    'unit.ambulance': '救护车',
    'unit.patrol': '巡逻车',
    'sensor.normal': '正常',
    'sensor.warning': '超警戒',
    'dept.fire': '消防救援',
    'dept.medical': '医疗急救',
    'dept.police': '公安',
    'dept.environment': '生态环境',
    'dept.water': '水务',
    'dept.traffic': '交通',
    'dept.emergency': '应急管理',
    'dept.command': '指挥中心',
    'group.base': '基础地理',
    'group.facilities': '应急设施',
    'group.analysis': '分析',
    'group.environment': '生态环境',
    'group.sensors': '监测感知',
    'group.operations': '指挥调度',
    'group.registry': '不动产与矿权',
    'group.user': '用户图层',
    hillshade: '地形晕渲',
    panel_failed: '“{panel}”面板未能加载：{error}',
  },
  en: {
    title: 'Changzhi City Operations Command',
    subtitle: 'One map of the whole city',
    login_title: 'Command console log-in',
    username: 'User name',
    password: 'Password',
    login: 'Log in',
    logout: 'Log out',
    wrong_password: 'Wrong user name or password',
    session_expired: 'Your session has expired: please log in again',
    login_failed: 'Log-in failed: ',
    layers: 'Layers',
    legend: 'Legend',
    live_layers: 'Live devices',
    only_my_dept: 'My department only',
    alarms: 'Live alarms',
    alarms_empty: 'No unacknowledged alarms',
    ack: 'Ack',
    acked_by: 'acknowledged by {by}',
    cleared: 'cleared',
    overview: 'Overview',
    units_online: 'Units online',
    units_moving: 'Responding',
    open_alarms: 'Open alarms',
    sensors_offline: 'Devices offline',
    gauges_over: 'Gauges over warning',
    chart_units: 'Units by status',
    chart_alarms: 'Alarms by kind, last hour',
    chart_air: 'PM2.5 by district (µg/m³)',
    chart_gauges: 'Gauges above warning',
    ws_connecting: 'Connecting to the live feed…',
    ws_open: 'Live feed connected',
    ws_down: 'Live feed lost; reconnecting in {s} s (attempt {n})',
    ws_reconnecting: 'Reconnecting to the live feed…',
    ws_restored: 'Live feed restored',
    ws_dropped: 'Congestion: {n} events dropped',
    details: 'Details',
    close: 'Close',
    last_reading: 'Last reading',
    time: 'Time',
    department: 'Department',
    battery: 'Battery',
    signal: 'Signal',
    status: 'Status',
    speed: 'Speed',
    heading: 'Heading',
    online: 'online',
    offline: 'offline',
    stale: 'stale',
    replay: 'Replay',
    live: 'Back to live',
    replay_from: 'From',
    replay_to: 'To',
    replay_load: 'Load',
    replay_loading: 'Loading tracks…',
    replay_play: 'Play',
    replay_pause: 'Pause',
    replay_loaded: '{u} vehicles, {s} stations, {a} alarms loaded',
    replay_bad_window: 'The start must come before the end',
    replay_alarms: 'Replayed alarms',
    replay_mode: 'Replay',
    report: 'Export report map',
    report_making: 'Making the report map…',
    report_done: 'Report map downloaded',
    lang: '中文',
    restricted: 'restricted',
    units: '',
    count: 'count',
    none: 'none',
    'status.available': 'available',
    'status.dispatched': 'dispatched',
    'status.en_route': 'en route',
    'status.on_scene': 'on scene',
    'status.out_of_service': 'out of service',
    'status.unknown': 'unknown',
    'unit.engine': 'Engine',
    'unit.ladder': 'Ladder',
    'unit.rescue': 'Rescue',
    'unit.hazmat': 'Hazmat',
    'unit.ambulance': 'Ambulance',
    'unit.patrol': 'Patrol car',
    'sensor.normal': 'normal',
    'sensor.warning': 'above warning',
    'dept.fire': 'Fire and rescue',
    'dept.medical': 'Emergency medical',
    'dept.police': 'Police',
    'dept.environment': 'Environment',
    'dept.water': 'Water',
    'dept.traffic': 'Traffic',
    'dept.emergency': 'Emergency management',
    'dept.command': 'Command centre',
    'group.base': 'Base map',
    'group.facilities': 'Facilities',
    'group.analysis': 'Analysis',
    'group.environment': 'Environment',
    'group.sensors': 'Sensors',
    'group.operations': 'Operations',
    'group.registry': 'Registries',
    'group.user': 'User layers',
    hillshade: 'Relief',
    panel_failed: 'The “{panel}” panel could not start: {error}',
  },
};

const listeners = [];
export let lang = localStorage.getItem('changzhi.console.lang') === 'en' ? 'en' : 'zh';

export function t(key, vars) {
  let text = (DICT[lang] && DICT[lang][key]) ?? DICT.zh[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, v);
  return text;
}

// Panels keep their words in their own file (an application's strings.json, a platform
// panel's *-strings.js) and add them here; a language the console does not speak is ignored.
// With a prefix (an application's panel: 'traffic:'), every word is kept under the prefix
// too, and a key the wall already has is not replaced: a panel's 'title' must not rename the
// wall. The panel's ctx.t finds its own words first (hasKey).
export function addStrings(more, prefix = '') {
  for (const [code, words] of Object.entries(more || {})) {
    if (!DICT[code] || !words || typeof words !== 'object') continue;
    for (const [key, text] of Object.entries(words)) {
      if (prefix) DICT[code][prefix + key] = text;
      if (!prefix || !(key in DICT[code])) DICT[code][key] = text;
    }
  }
}

export function hasKey(key) {
  return key in DICT.zh || key in (DICT[lang] || {});
}

export function tOr(key, fallback) {
  return (DICT[lang] && DICT[lang][key]) ?? fallback;
}

export function applyStatic(root = document) {
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}

export function setLang(next) {
  lang = next === 'en' ? 'en' : 'zh';
  localStorage.setItem('changzhi.console.lang', lang);
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function onLang(fn) {
  listeners.push(fn);
}

// Times are shown in the city's own zone, whatever the wall computer is set to.
export const TZ = 'Asia/Shanghai';
export function fmtTime(ms, withDate = false) {
  if (ms == null || Number.isNaN(ms)) return '—';
  const opts = { timeZone: TZ, hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit' };
  if (withDate) Object.assign(opts, { year: 'numeric', month: '2-digit', day: '2-digit' });
  return new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'zh-CN', opts).format(new Date(ms));
}
