// The overview column: KPIs and four charts (ECharts, served locally), refreshed every few
// seconds from what the page already holds — no extra load on the platform per tick.

import * as echarts from './vendor/echarts/echarts.esm.min.mjs';
import { t, tOr, lang, onLang } from './i18n.js';
import { STATUS_COLORS } from './live.js';
import { kindColor } from './kinds.js';

const TEXT = '#c9d6e3';
const GRID = 'rgba(140,170,200,0.15)';
const STATUSES = ['available', 'dispatched', 'en_route', 'on_scene', 'out_of_service', 'unknown'];

// China's AQI bands for PM2.5 (HJ 633-2012, 24 h breakpoints), used as colours only.
function pm25Color(v) {
  if (v <= 35) return '#52c41a';
  if (v <= 75) return '#fadb14';
  if (v <= 115) return '#fa8c16';
  if (v <= 150) return '#f5222d';
  if (v <= 250) return '#a0118c';
  return '#7e0023';
}

function rem() {
  return parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
}

export class Overview {
  constructor(els) {
    this.els = els;
    this.charts = {};
    this.gaugeSeries = [];
    for (const [key, el] of Object.entries(els.charts)) {
      this.charts[key] = echarts.init(el, null, { renderer: 'canvas' });
    }
    window.addEventListener('resize', () => { for (const c of Object.values(this.charts)) c.resize(); });
    onLang(() => this.last && this.update(this.last));
  }

  base(title) {
    const r = rem();
    return {
      animation: false,
      title: { text: title, left: 0, top: 0, textStyle: { color: TEXT, fontSize: r * 0.85, fontWeight: 'normal' } },
      textStyle: { color: TEXT, fontSize: r * 0.72 },
      grid: { left: r * 2.6, right: r * 0.6, top: r * 2.0, bottom: r * 1.6 },
      tooltip: { trigger: 'item', confine: true },
    };
  }

  // What an empty chart says, instead of a grey ring or bare axes.
  none(empty) {
    const r = rem();
    return empty ? [{ type: 'text', left: 'center', top: 'middle', style: { text: t('none'), fill: '#8ea3b8', fontSize: r * 0.9 } }] : [];
  }

  update(facts) {
    this.last = facts;
    const r = rem();
    const { units, alarmsByKind, pm25ByDistrict, gaugesOver } = facts;
    const kpi = this.els.kpis;
    kpi.unitsOnline.textContent = `${facts.unitsOnline}/${facts.unitsTotal}`;
    // "10000/10000" must fit its box as "111/111" does.
    kpi.unitsOnline.style.fontSize = kpi.unitsOnline.textContent.length > 7 ? '1.05rem' : '';
    kpi.moving.textContent = String((units.dispatched || 0) + (units.en_route || 0) + (units.on_scene || 0));
    kpi.alarms.textContent = String(facts.openAlarms);
    kpi.offline.textContent = String(facts.offline);
    kpi.gauges.textContent = String(gaugesOver);

    const pie = STATUSES.filter((s) => units[s]).map((s) => ({
      name: t(`status.${s}`), value: units[s], itemStyle: { color: STATUS_COLORS[s] },
    }));
    this.charts.units.setOption({
      ...this.base(t('chart_units')),
      legend: { orient: 'vertical', right: 0, top: 'middle', textStyle: { color: TEXT, fontSize: r * 0.7 }, itemWidth: r * 0.8, itemHeight: r * 0.6 },
      series: [{
        type: 'pie', radius: ['42%', '72%'], center: ['34%', '56%'], data: pie, showEmptyCircle: false,
        label: { show: false }, itemStyle: { borderColor: '#0d1b2a', borderWidth: 2 },
      }],
      graphic: this.none(!pie.length),
    }, true);

    const kinds = Object.keys(alarmsByKind).sort((a, b) => alarmsByKind[b] - alarmsByKind[a]);
    this.charts.alarms.setOption({
      ...this.base(t('chart_alarms')),
      xAxis: { type: 'category', data: kinds.map((k) => tOr(`kind.${k}`, k)), axisLabel: { color: TEXT, fontSize: r * 0.65, interval: 0, rotate: kinds.length > 4 ? 25 : 0 }, axisLine: { lineStyle: { color: GRID } } },
      yAxis: { type: 'value', minInterval: 1, axisLabel: { color: TEXT, fontSize: r * 0.65 }, splitLine: { lineStyle: { color: GRID } } },
      series: [{
        type: 'bar', barMaxWidth: r * 1.6,
        data: kinds.map((k) => ({ value: alarmsByKind[k], itemStyle: { color: kindColor(k) } })),
        label: { show: true, position: 'top', color: TEXT, fontSize: r * 0.65 },
      }],
      graphic: this.none(!kinds.length),
    }, true);

    const districts = pm25ByDistrict.slice().sort((a, b) => b.value - a.value);
    this.charts.air.setOption({
      ...this.base(t('chart_air')),
      grid: { left: r * 5.2, right: r * 1.8, top: r * 2.0, bottom: r * 0.6 },
      xAxis: { type: 'value', axisLabel: { color: TEXT, fontSize: r * 0.6 }, splitLine: { lineStyle: { color: GRID } } },
      yAxis: { type: 'category', inverse: true, data: districts.map((d) => (lang === 'en' ? d.name_en : d.name_zh)), axisLabel: { color: TEXT, fontSize: r * 0.62 }, axisLine: { lineStyle: { color: GRID } } },
      series: [{
        type: 'bar', barMaxWidth: r * 0.9,
        data: districts.map((d) => ({ value: Math.round(d.value), itemStyle: { color: pm25Color(d.value) } })),
        label: { show: true, position: 'right', color: TEXT, fontSize: r * 0.6 },
      }],
      graphic: this.none(!districts.length),
    }, true);

    const now = Date.now();
    const last = this.gaugeSeries[this.gaugeSeries.length - 1];
    if (!last || now - last[0] > 10_000) this.gaugeSeries.push([now, gaugesOver]);
    if (this.gaugeSeries.length > 360) this.gaugeSeries.shift();
    this.charts.gauges.setOption({
      ...this.base(`${t('chart_gauges')}: ${gaugesOver}`),
      tooltip: { trigger: 'axis', confine: true },
      xAxis: { type: 'time', min: now - 30 * 60_000, max: now, axisLabel: { color: TEXT, fontSize: r * 0.6, hideOverlap: true }, axisLine: { lineStyle: { color: GRID } }, splitLine: { show: false } },
      yAxis: { type: 'value', minInterval: 1, axisLabel: { color: TEXT, fontSize: r * 0.65 }, splitLine: { lineStyle: { color: GRID } } },
      series: [{
        type: 'line', step: 'end', showSymbol: false, data: this.gaugeSeries,
        lineStyle: { color: gaugesOver ? '#ff4d4f' : '#4096ff', width: 2 },
        areaStyle: { color: gaugesOver ? 'rgba(255,77,79,0.18)' : 'rgba(64,150,255,0.15)' },
      }],
    }, true);
  }
}
