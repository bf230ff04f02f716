// A second-screen voting page on @votestream/sdk, without a bundler (see index.html's import map).
// Settings come from the URL fragment: #poll=<id>&mqtt=<ws url>&token=<voter JWT>. A real app gets the token
// from its identity provider; the vote API is this page's own origin (behind the same load balancer).
import { asyncStorageAdapter, createVoterClient } from '@votestream/sdk';

const params = new URLSearchParams(location.hash.slice(1));
const pollId = params.get('poll') ?? '';
const token = params.get('token') ?? '';
const $ = (id) => document.getElementById(id);

const client = createVoterClient({
  apiUrl: location.origin,
  mqttUrl: params.get('mqtt') ?? `wss://${location.host}/mqtt`,
  getToken: () => token,
  // Votes not yet answered survive a reload: the outbox lives in localStorage.
  storage: asyncStorageAdapter(window.localStorage),
  onProgress: (p) => {
    $('status').textContent = p.phase;
  },
});

function showTotals(update) {
  const rows = Object.entries(update.totals).sort(([a], [b]) => a.localeCompare(b));
  $('totals').replaceChildren(
    ...rows.map(([optionId, n]) => {
      const row = document.createElement('div');
      row.dataset.option = optionId;
      row.textContent = `${optionId}: ${n}`;
      return row;
    }),
  );
  $('total').textContent = String(update.total);
  document.body.dataset.total = String(update.total);
}

// The ballot receipt says `counted` once the stream has put the vote in the tally (seconds, usually).
async function waitForReceipt() {
  for (let attempt = 0; attempt < 240; attempt++) {
    const r = await client.getReceipt(pollId);
    const shown = r.kind === 'receipt' ? r.status : r.kind;
    $('receipt').textContent = shown;
    document.body.dataset.receipt = shown;
    if (r.kind === 'receipt' && r.status !== 'pending') return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function vote(optionId) {
  for (const b of $('options').querySelectorAll('button')) b.disabled = true;
  const outcome = await client.castVote(pollId, optionId);
  $('status').textContent = 'answered';
  $('outcome').textContent = outcome.kind === 'accepted' ? `accepted (${outcome.voteId})` : outcome.kind;
  document.body.dataset.outcome = outcome.kind;
  if (outcome.kind === 'accepted' || outcome.kind === 'already_voted') await waitForReceipt();
}

const poll = await (await fetch(`/v1/polls/${encodeURIComponent(pollId)}`)).json();
$('title').textContent = poll.title;
$('options').replaceChildren(
  ...poll.options.map((o) => {
    const b = document.createElement('button');
    b.dataset.option = o.id;
    b.textContent = o.label;
    b.addEventListener('click', () => void vote(o.id));
    return b;
  }),
);
await client.flushOutbox(); // resend what a previous visit could not deliver
await client.subscribeResults(pollId, showTotals);
document.body.dataset.ready = 'true';
