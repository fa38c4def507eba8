// A small bar chart of attempts per hour (succeeded below, failed stacked on top), drawn as
// SVG so it needs no library and scales with the page.

import { svg } from "./dom.js";

export function hourlyChart(buckets, label) {
  const width = 240;
  const height = 48;
  const gap = 1;
  const slot = width / Math.max(buckets.length, 1);
  const peak = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const scale = (n) => (n / peak) * (height - 2);
  const bars = buckets.flatMap((bucket, i) => {
    const x = i * slot + gap / 2;
    const ok = scale(bucket.succeeded);
    const bad = scale(bucket.failed);
    const start = new Date(bucket.start).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    const tip = `${start}: ${bucket.succeeded} succeeded, ${bucket.failed} failed`;
    return [
      svg("rect", { x, y: height - ok, width: slot - gap, height: ok, class: "bar-ok" }, svg("title", {}, tip)),
      svg("rect", { x, y: height - ok - bad, width: slot - gap, height: bad, class: "bar-bad" }, svg("title", {}, tip)),
    ];
  });
  return svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": label,
  }, svg("line", { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, class: "axis" }), bars);
}
