// A small line chart drawn as inline SVG: one series of recent samples (oldest left), a
// horizontal grid at 0, half and the top of the scale, and the scale's labels. Samples that are
// null (nothing to measure in that interval) leave a gap in the line.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 480;
const HEIGHT = 140;
const PAD = { left: 56, right: 8, top: 10, bottom: 18 };

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export class LineChart {
  /**
   * @param {SVGSVGElement} svg
   * @param {{title: string, capacity: number, fixedMax?: number, format: (v: number) => string,
   *          color: string}} options  capacity: how many samples fit across the chart
   */
  constructor(svg, options) {
    this.svg = svg;
    this.options = options;
    this.samples = [];
    svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
    svg.setAttribute('role', 'img');
    this.draw();
  }

  /** Adds one sample (a number, or null for "no data") and redraws. */
  push(value) {
    this.samples.push(value);
    if (this.samples.length > this.options.capacity) this.samples.shift();
    this.draw();
  }

  scaleMax() {
    if (this.options.fixedMax !== undefined) return this.options.fixedMax;
    const top = Math.max(0, ...this.samples.filter((v) => v !== null));
    if (top <= 0) return 1;
    // A round number above the largest sample: 1, 2 or 5 times a power of ten.
    const power = 10 ** Math.floor(Math.log10(top));
    return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= top);
  }

  draw() {
    const { title, capacity, format, color } = this.options;
    const max = this.scaleMax();
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (i) => PAD.left + (plotW * (i + capacity - this.samples.length)) / (capacity - 1);
    const y = (v) => PAD.top + plotH * (1 - Math.min(v, max) / max);

    const nodes = [el('rect', { x: 0, y: 0, width: WIDTH, height: HEIGHT, class: 'chart-bg' })];
    for (const level of [0, 0.5, 1]) {
      const gy = y(max * level);
      nodes.push(el('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: gy, y2: gy, class: 'grid' }));
      nodes.push(el('text', { x: PAD.left - 6, y: gy + 4, class: 'tick' }, format(max * level)));
    }
    nodes.push(el('text', { x: PAD.left, y: HEIGHT - 4, class: 'axis-note' },
                  `last ${capacity} samples, newest on the right`));

    let path = '';
    let pen = false;
    this.samples.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      path += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (path) nodes.push(el('path', { d: path, class: 'series', stroke: color }));
    else nodes.push(el('text', { x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, class: 'no-data' },
                       'no data yet'));
    const last = [...this.samples].reverse().find((v) => v !== null && Number.isFinite(v));
    if (last !== undefined) {
      const i = this.samples.lastIndexOf(last);
      nodes.push(el('circle', { cx: x(i), cy: y(last), r: 3, fill: color }));
    }
    this.svg.replaceChildren(...nodes);
    this.svg.setAttribute('aria-label', `${title}: ${last === undefined ? 'no data yet'
                                                                       : `latest ${format(last)}`}`);
  }
}
