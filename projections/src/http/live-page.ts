/**
 * The live results page a TV studio can put on screen: one poll's options as bars with counts and
 * percentages. It loads the current results over HTTP, then follows the retained MQTT topic over
 * WebSockets (anonymous, subscribe-only), applying a message only if its version is newer.
 */
export function livePage(opts: { pollId: string; mqttWsUrl: string; apiUrl: string; nonce: string }): string {
  const boot = JSON.stringify({ pollId: opts.pollId, mqttWsUrl: opts.mqttWsUrl, apiUrl: opts.apiUrl }).replaceAll(
    '<',
    '\\u003c',
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live results</title>
<style nonce="${opts.nonce}">
  body { margin: 0; font-family: system-ui, sans-serif; background: #0b1020; color: #f4f6ff; }
  main { max-width: 960px; margin: 0 auto; padding: 32px; }
  h1 { font-size: 28px; margin: 0 0 4px; }
  #meta { color: #9aa4c7; margin-bottom: 24px; font-size: 14px; }
  #status.final { color: #0b1020; background: #ffd166; padding: 2px 8px; border-radius: 4px; font-weight: 700; }
  .row { display: grid; grid-template-columns: 160px 1fr 150px; align-items: center; gap: 12px; margin: 10px 0; }
  .label { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { background: #1c2542; height: 36px; border-radius: 6px; overflow: hidden; }
  .bar { background: linear-gradient(90deg, #3a86ff, #8338ec); height: 100%; width: 0; transition: width 0.25s ease-out; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
  #total { margin-top: 20px; font-size: 18px; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<main>
  <h1 id="title"></h1>
  <div id="meta"><span id="status">connecting</span> · version <span id="version">-</span></div>
  <div id="bars"></div>
  <div id="total">Total votes: <span id="total-count">0</span></div>
</main>
<script nonce="${opts.nonce}" src="/live/assets/mqtt.min.js"></script>
<script nonce="${opts.nonce}">
(function () {
  var boot = ${boot};
  var current = null;
  var labels = {};
  var order = [];
  var bars = document.getElementById('bars');
  document.getElementById('title').textContent = 'Poll ' + boot.pollId;
  function render(r) {
    if (current && r.version <= current.version) return; // stale or repeated: drop
    current = r;
    var ids = order.concat(Object.keys(r.totals).filter(function (id) { return order.indexOf(id) < 0; }).sort());
    bars.textContent = '';
    ids.forEach(function (id) {
      var n = r.totals[id] || 0;
      var pct = r.total > 0 ? (100 * n) / r.total : 0;
      var row = document.createElement('div');
      row.className = 'row';
      row.setAttribute('data-option', id);
      row.innerHTML = '<div class="label"></div><div class="track"><div class="bar"></div></div><div class="num"></div>';
      row.querySelector('.label').textContent = labels[id] || id;
      row.querySelector('.bar').style.width = pct.toFixed(1) + '%';
      row.querySelector('.num').textContent = n + ' (' + pct.toFixed(1) + '%)';
      bars.appendChild(row);
    });
    document.getElementById('total-count').textContent = String(r.total);
    document.getElementById('version').textContent = String(r.version);
    var status = document.getElementById('status');
    status.textContent = r.final ? 'FINAL' : 'LIVE';
    status.className = r.final ? 'final' : 'live';
    document.body.setAttribute('data-version', String(r.version));
    document.body.setAttribute('data-final', String(r.final));
  }
  // The poll's title and option labels, in display order, from the vote API (public, read-only).
  var pollUrl = boot.apiUrl + '/v1/polls/' + encodeURIComponent(boot.pollId);
  fetch(pollUrl)
    .then(function (res) { return res.ok ? res.json() : null; })
    .then(function (p) {
      if (!p) return;
      document.getElementById('title').textContent = p.title;
      order = p.options.map(function (o) { labels[o.id] = o.label; return o.id; });
      if (current) { var r = current; current = null; render(r); }
    })
    .catch(function () {});
  fetch(pollUrl + '/results')
    .then(function (res) { return res.ok ? res.json() : null; })
    .then(function (r) { if (r && r.version > 0) render(r); })
    .catch(function () {});
  var client = mqtt.connect(boot.mqttWsUrl, { protocolVersion: 5, reconnectPeriod: 1000, clean: true });
  client.on('connect', function () {
    if (!current) document.getElementById('status').textContent = 'waiting for votes';
    client.subscribe('votestream/polls/' + boot.pollId + '/totals', { qos: 1 });
  });
  client.on('message', function (_topic, payload) {
    try { render(JSON.parse(payload.toString())); } catch (e) {}
  });
})();
</script>
</body>
</html>`;
}
