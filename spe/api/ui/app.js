// The SPE airlock reviewer page. Plain ES2020, no dependencies, no build step.
// Sign-in: OAuth 2.0 authorization code flow with PKCE (S256); the access token lives in
// sessionStorage only. File contents are only ever put into the page with textContent
// or as an image from a blob URL, never as HTML.
'use strict';

(() => {
  const API = '/spe/v1';
  const TOKEN_KEY = 'spe.ui.token';
  const FLOW_KEY = 'spe.ui.flow';
  const PREVIEW_ROWS = 200;
  const PAGE_SIZE = 500;
  const MAX_PAGES = 20;
  const DECIDED = new Set(['APPROVED', 'REJECTED', 'RETURNED', 'RELEASED', 'REVOKED', 'WITHDRAWN']);
  const SEVERITY_ORDER = { hard: 0, soft: 1, pass: 2 };
  const DECISION_LABELS = { approve: 'approve', request_changes: 'request changes', reject: 'reject' };

  const state = { config: null, me: null, requests: [], mine: [], current: null, context: null, blobUrls: [], previews: new Map(), pending: 0 };
  const $ = (id) => document.getElementById(id);

  // -- small helpers -----------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.className = value;
      else node.setAttribute(key, String(value));
    }
    node.append(...children);
    return node;
  }

  function when(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  function setStatus(text) { $('status').textContent = text || ''; }

  function showError(err) {
    const box = $('error');
    box.textContent = err ? (err.message || String(err)) : '';
    box.hidden = !err;
  }

  function base64url(bytes) {
    let text = '';
    for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function randomString(bytes) {
    const data = new Uint8Array(bytes);
    crypto.getRandomValues(data);
    return base64url(data);
  }

  async function s256(text) {
    return base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  }

  const trimSlash = (url) => String(url || '').replace(/\/+$/, '');
  const redirectUri = () => `${location.origin}/spe/ui/`;

  // -- sign-in (authorization code + PKCE) ------------------------------------------------

  async function loadConfig() {
    if (!state.config) {
      const resp = await fetch('config.json', { cache: 'no-store' });
      if (!resp.ok) throw new Error(`cannot read config.json (HTTP ${resp.status})`);
      state.config = await resp.json();
    }
    return state.config;
  }

  async function endpoints(cfg) {
    if (cfg.authorize_endpoint && cfg.token_endpoint) {
      return { authorization_endpoint: cfg.authorize_endpoint, token_endpoint: cfg.token_endpoint };
    }
    const resp = await fetch(`${trimSlash(cfg.issuer)}/.well-known/openid-configuration`,
      { credentials: 'omit', cache: 'no-store' });
    if (!resp.ok) throw new Error(`issuer discovery failed (HTTP ${resp.status})`);
    const doc = await resp.json();
    if (trimSlash(doc.issuer) !== trimSlash(cfg.issuer)) throw new Error('issuer discovery names another issuer');
    if (!doc.authorization_endpoint || !doc.token_endpoint) throw new Error('the issuer does not offer the authorization code flow');
    return {
      authorization_endpoint: cfg.authorize_endpoint || doc.authorization_endpoint,
      token_endpoint: cfg.token_endpoint || doc.token_endpoint,
    };
  }

  async function signIn() {
    showError(null);
    const cfg = await loadConfig();
    const ep = await endpoints(cfg);
    const flow = { verifier: randomString(48), state: randomString(16), token_endpoint: ep.token_endpoint };
    sessionStorage.setItem(FLOW_KEY, JSON.stringify(flow));
    const url = new URL(ep.authorization_endpoint);
    const params = {
      response_type: 'code', client_id: cfg.client_id, redirect_uri: redirectUri(), scope: cfg.scope,
      state: flow.state, code_challenge: await s256(flow.verifier), code_challenge_method: 'S256',
    };
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    location.assign(url.toString());
  }

  async function finishSignIn(params) {
    const saved = sessionStorage.getItem(FLOW_KEY);
    sessionStorage.removeItem(FLOW_KEY);
    history.replaceState(null, '', redirectUri()); // the code leaves the address bar
    if (params.get('error')) {
      throw new Error(`sign-in refused: ${params.get('error_description') || params.get('error')}`);
    }
    const flow = saved ? JSON.parse(saved) : null;
    if (!flow || !params.get('state') || flow.state !== params.get('state')) {
      throw new Error('sign-in failed: the answer does not belong to this sign-in; try again');
    }
    const cfg = await loadConfig();
    const body = new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code') || '', redirect_uri: redirectUri(),
      client_id: cfg.client_id, code_verifier: flow.verifier,
    });
    const resp = await fetch(flow.token_endpoint, { method: 'POST', body, credentials: 'omit', cache: 'no-store' });
    const doc = await resp.json().catch(() => ({}));
    if (!resp.ok || !doc.access_token) {
      throw new Error(`sign-in failed: ${doc.error_description || doc.error || `HTTP ${resp.status}`}`);
    }
    const expiresAt = Date.now() + 1000 * (Number(doc.expires_in) || 3600);
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ access_token: doc.access_token, expires_at: expiresAt }));
  }

  function token() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
      if (saved && saved.access_token && saved.expires_at > Date.now()) return saved.access_token;
    } catch (_) { /* a damaged entry counts as signed out */ }
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = null;
    state.current = null;
    state.previews.clear();
    releaseBlobs();
    showSignedOut(message || 'Signed out.');
  }

  // -- API --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  async function api(path, { method = 'GET', json, raw = false } = {}) {
    const bearer = token();
    if (!bearer) { signOut('Your session has ended; sign in again.'); throw new ApiError('not signed in', 401); }
    const headers = { Authorization: `Bearer ${bearer}`, Accept: raw ? '*/*' : 'application/json' };
    let body;
    if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
    busy(1);
    try {
      const resp = await fetch(API + path, { method, headers, body, credentials: 'omit', cache: 'no-store' });
      if (resp.status === 401) {
        signOut('Your session has ended or was refused; sign in again.');
        throw new ApiError('not signed in', 401);
      }
      if (!resp.ok) {
        let message = `HTTP ${resp.status}`;
        try {
          const problem = await resp.json(); // ErrorResponse {msg, status_code}
          if (problem && problem.msg) message = problem.msg;
        } catch (_) { /* not JSON: keep the status */ }
        throw new ApiError(message, resp.status);
      }
      return raw ? resp : await resp.json();
    } finally {
      busy(-1);
    }
  }

  function busy(change) {
    // how many API calls are under way, on <body data-pending> (tests wait for 0)
    state.pending += change;
    document.body.dataset.pending = String(state.pending);
  }

  const requestPath = (id) => `/release-requests/${encodeURIComponent(id)}`;

  // -- views ------------------------------------------------------------------------------

  function showSignedOut(message) {
    $('user').hidden = true;
    $('sign-out').hidden = true;
    $('sign-in').hidden = false;
    $('main').hidden = true;
    $('detail').hidden = true;
    setStatus(message || 'Sign in to review release requests.');
  }

  function describeMe(me) {
    const roles = (me.projects || []).map((p) => `${p.id}: ${(p.roles || []).join(', ') || 'member'}`);
    return roles.length ? `${me.username} (${roles.join('; ')})` : me.username;
  }

  async function showSession() {
    if (!token()) { showSignedOut(); return; }
    state.me = await api('/me');
    $('user').textContent = describeMe(state.me);
    $('user').hidden = false;
    $('sign-out').hidden = false;
    $('sign-in').hidden = true;
    $('main').hidden = false;
    await loadRequests();
    await loadMine();
  }

  async function listing(role) {
    // the listing is paged: follow next_page_token (large pages, a bounded number of them)
    const found = [];
    let pageToken = '';
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const query = new URLSearchParams({ role, page_size: String(PAGE_SIZE) });
      if (pageToken) query.set('page_token', pageToken);
      const data = await api(`/release-requests?${query}`);
      found.push(...(data.requests || []));
      pageToken = data.next_page_token || '';
      if (!pageToken) break;
    }
    return found;
  }

  async function loadMine() {
    state.mine = await listing('requester');
    renderMine();
  }

  function ownerButtons(r) {
    if (r.state !== 'RETURNED') return [];
    const resubmit = el('button', { type: 'button', 'data-testid': 'mine-resubmit', 'data-id': r.id, text: 'Resubmit' });
    resubmit.addEventListener('click', () => ownerAction(r.id, 'resubmit').catch(showError));
    const withdraw = el('button', { type: 'button', 'data-testid': 'mine-withdraw', 'data-id': r.id, text: 'Withdraw' });
    withdraw.addEventListener('click', () => ownerAction(r.id, 'withdraw').catch(showError));
    return [resubmit, ' ', withdraw];
  }

  function renderMine() {
    const rows = state.mine.map((r) => {
      const open = el('button', { type: 'button', class: 'link', 'data-testid': 'open-mine', 'data-id': r.id, title: r.id, text: r.id });
      open.addEventListener('click', () => openRequest(r.id).catch(showError));
      return el('tr', { 'data-testid': 'my-request-row', 'data-id': r.id, 'data-state': r.state },
        el('td', {}, open),
        el('td', {}, el('code', { text: r.run_id })),
        el('td', { text: r.project }),
        el('td', {}, el('span', { class: `state state-${r.state}`, text: r.state })),
        el('td', { class: 'num', text: (r.files || []).length }),
        el('td', { text: when(r.created_at) }),
        el('td', {}, ...ownerButtons(r)));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'You have no release requests.' })));
    $('mine-rows').replaceChildren(...rows);
    $('mine-section').hidden = false;
  }

  async function ownerAction(id, action) {
    showError(null);
    const updated = await api(`${requestPath(id)}/${action}`, { method: 'POST' });
    setStatus(action === 'withdraw' ? `Request ${id} withdrawn.` : `Request ${id} resubmitted: the checks run again.`);
    await loadMine();
    if (state.current && state.current.id === id) renderDetail(updated);
  }

  const isOwn = (req) => state.mine.some((r) => r.id === req.id);

  async function loadRequests() {
    state.requests = await listing('reviewer');
    renderRequests();
    const count = state.requests.filter((r) => r.state === 'IN_REVIEW').length;
    setStatus(`${count} request(s) waiting for review.`);
  }

  function renderRequests() {
    const onlyPending = $('only-pending').checked;
    const shown = state.requests.filter((r) => !onlyPending || r.state === 'IN_REVIEW');
    const rows = shown.map((r) => {
      const open = el('button', { type: 'button', class: 'link', 'data-testid': 'open-request', 'data-id': r.id, title: r.id, text: r.id });
      open.addEventListener('click', () => openRequest(r.id).catch(showError));
      const row = el('tr', { 'data-testid': 'request-row', 'data-id': r.id, 'data-state': r.state },
        el('td', {}, open),
        el('td', {}, el('code', { text: r.run_id })),
        el('td', { text: r.requester }),
        el('td', { text: r.project }),
        el('td', {}, el('span', { class: `state state-${r.state}`, text: r.state })),
        el('td', { class: 'num', text: (r.files || []).length }),
        el('td', { text: when(r.created_at) }));
      if (state.current && state.current.id === r.id) row.classList.add('selected');
      return row;
    });
    $('request-rows').replaceChildren(...rows);
    $('no-requests').hidden = rows.length > 0;
  }

  async function openRequest(id) {
    showError(null);
    const req = await api(requestPath(id));
    await loadContext(req);
    renderDetail(req);
    renderRequests();
    $('detail-heading').focus(); // keyboard users land on what they opened
  }

  async function loadContext(req) {
    // what produced the files: for the request's reviewers only (403 to its requester)
    state.context = null;
    if (isOwn(req)) return;
    try {
      state.context = await api(`${requestPath(req.id)}/context`);
    } catch (err) {
      if (err.status !== 403 && err.status !== 404) throw err;
    }
  }

  function renderContext(req) {
    const ctx = state.context && state.context.request_id === req.id ? state.context : null;
    $('context').hidden = !ctx;
    if (!ctx) return;
    const run = ctx.run;
    if (!run) {
      $('ctx-workflow').textContent = '(the run was purged)';
      for (const id of ['ctx-digest', 'ctx-engine', 'ctx-run', 'ctx-params']) $(id).textContent = '';
      $('ctx-datasets').replaceChildren();
      return;
    }
    $('ctx-workflow').textContent = `${run.workflow_id}@${run.workflow_version}`;
    $('ctx-digest').textContent = run.bundle_digest;
    const options = Object.entries(run.engine_options || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    $('ctx-engine').textContent = options ? `${run.engine} (${options})` : run.engine;
    $('ctx-run').textContent = `${run.run_id}, ${run.state}, by ${run.owner}` + (run.end_time ? `, ended ${when(run.end_time)}` : '');
    const datasets = (run.datasets || []).map((d) => el('li', { 'data-testid': 'ctx-dataset' },
      el('strong', { text: d.dataset }), ': ', el('code', { text: d.path }),
      el('span', { class: 'muted', text: ` (parameter ${d.pointer})` })));
    if (!datasets.length) datasets.push(el('li', { class: 'muted', text: 'No dataset is named in the parameters.' }));
    $('ctx-datasets').replaceChildren(...datasets);
    $('ctx-params').textContent = JSON.stringify(run.workflow_params || {}, null, 2);
  }

  function fileType(path) {
    const ctx = state.context;
    const found = ctx && (ctx.files || []).find((f) => f.path === path);
    return found ? found.type : '';
  }

  function isMine(vote) {
    const me = state.me || {};
    return vote.reviewer === me.username || vote.reviewer === me.sub;
  }

  function releaseBlobs() {
    for (const url of state.blobUrls) URL.revokeObjectURL(url);
    state.blobUrls = [];
  }

  function findingItem(finding) {
    const severity = String(finding.severity || '').toLowerCase();
    const item = el('li', { class: `finding sev-${severity}`, 'data-testid': 'finding', 'data-severity': severity, 'data-check': finding.check },
      el('span', { class: 'sev', text: severity || '?' }), ' ',
      el('strong', { text: finding.check || '' }), ': ',
      el('span', { text: finding.message || '' }));
    if (finding.details && Object.keys(finding.details).length) {
      item.append(el('details', {}, el('summary', { text: 'details' }),
        el('pre', { text: JSON.stringify(finding.details, null, 2) })));
    }
    return item;
  }

  function sortedFindings(findings) {
    return [...findings].sort((a, b) => (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3));
  }

  function drafts() {
    // what the reviewer typed but has not sent, so a refresh does not lose it
    const out = new Map();
    for (const form of document.querySelectorAll('#files form.vote')) {
      out.set(form.dataset.path, { decision: form.querySelector('select').value, reason: form.querySelector('textarea').value });
    }
    return out;
  }

  function renderDetail(req) {
    const sameRequest = state.current && state.current.id === req.id;
    const kept = sameRequest ? drafts() : new Map();
    state.current = req;
    releaseBlobs();
    $('detail').hidden = false;
    $('detail-id').textContent = req.id;
    const badge = $('detail-state');
    badge.textContent = req.state;
    badge.className = `state state-${req.state}`;
    $('detail-run').textContent = req.run_id;
    $('detail-requester').textContent = req.requester;
    $('detail-project').textContent = req.project;
    $('detail-round').textContent = req.round ?? 1;
    $('detail-reviewers').textContent =
      `${req.reviewers_voted ?? 0} of ${req.required_approvals} required reviewer(s) have voted on every file`;
    $('detail-reason').textContent = req.reason || '';
    $('detail-reason').hidden = $('detail-reason-label').hidden = !req.reason;
    $('detail-justification').textContent = req.justification;
    const own = isOwn(req);
    $('owner-actions').hidden = !(own && req.state === 'RETURNED');
    renderContext(req);

    const paths = new Set(req.files.map((f) => f.path));
    const general = sortedFindings((req.findings || []).filter((f) => !paths.has(f.path)));
    const box = $('request-findings');
    box.replaceChildren();
    if (general.length) {
      box.append(el('h3', { text: 'Checks of the whole request' }),
        el('ul', { class: 'findings', 'data-testid': 'request-findings' }, ...general.map(findingItem)));
    }

    const myVotes = (req.votes || []).filter(isMine);
    $('files').replaceChildren(...req.files.map((file, index) => renderFile(req, file, index, myVotes, kept)));
    const unvoted = req.files.filter((f) => !myVotes.some((v) => v.path === f.path));
    $('approve-all').hidden = !(req.can_review && unvoted.length > 1);
    $('approve-all').querySelector('.vote-error').hidden = true;

    const decided = DECIDED.has(req.state);
    $('votes-heading').textContent = decided ? 'Votes of all reviewers' : 'Your votes';
    $('votes-note').textContent = decided
      ? 'The request is decided: everyone\'s votes are shown.'
      : 'Other reviewers\' votes stay hidden until the request is decided.';
    const rows = (req.votes || []).map((v) => el('tr',
      { 'data-testid': 'vote', 'data-reviewer': v.reviewer, 'data-path': v.path, 'data-decision': v.decision, class: isMine(v) ? 'mine' : '' },
      el('td', { text: isMine(v) ? `${v.reviewer} (you)` : v.reviewer }),
      el('td', {}, el('code', { text: v.path })),
      el('td', {}, el('span', { class: `decision decision-${v.decision}`, text: DECISION_LABELS[v.decision] || v.decision })),
      el('td', { text: v.reason }),
      el('td', { text: when(v.at) })));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No votes yet.' })));
    $('vote-rows').replaceChildren(...rows);
  }

  function renderFile(req, file, index, myVotes, kept) {
    const node = $('file-template').content.firstElementChild.cloneNode(true);
    node.dataset.path = file.path;
    node.querySelector('.file-path').textContent = file.path;
    node.querySelector('.file-size').textContent = Number(file.size).toLocaleString();
    const kind = fileType(file.path);
    node.querySelector('.file-type').textContent = kind ? `, true type (from its bytes): ${kind}` : '';
    node.querySelector('.file-sha').textContent = String(file.sha256 || '').slice(0, 16);
    node.querySelector('.file-sha').title = file.sha256 || '';

    const findings = sortedFindings((req.findings || []).filter((f) => f.path === file.path));
    const list = node.querySelector('.findings');
    list.append(...findings.map(findingItem));
    if (!findings.length) list.append(el('li', { class: 'muted', text: 'No check results for this file.' }));

    const preview = node.querySelector('.preview');
    if (isOwn(req)) {
      preview.textContent = 'Previews are for the reviewers of your request.';
    } else if (req.state === 'IN_REVIEW') {
      showPreview(req, file, preview);
    } else {
      preview.textContent = 'Previews are shown to reviewers while the request is in review.';
    }

    const mine = myVotes.filter((v) => v.path === file.path);
    const voted = node.querySelector('.voted');
    if (mine.length) {
      const last = mine[mine.length - 1];
      voted.textContent = `You voted "${DECISION_LABELS[last.decision] || last.decision}": ${last.reason}`;
      voted.hidden = false;
    }
    if (req.can_review && !mine.length) setUpVoteForm(req, file, node.querySelector('form.vote'), index, kept.get(file.path));
    return node;
  }

  function setUpVoteForm(req, file, form, index, draft) {
    const select = form.querySelector('select');
    const reason = form.querySelector('textarea');
    const error = form.querySelector('.vote-error');
    const button = form.querySelector('button');
    form.dataset.path = file.path;
    select.id = `decision-${index}`;
    reason.id = `reason-${index}`;
    form.querySelector('.decision-label').htmlFor = select.id;
    form.querySelector('.reason-label').htmlFor = reason.id;
    if (draft) { select.value = draft.decision; reason.value = draft.reason; }
    form.hidden = false;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const text = reason.value.trim();
      if (!select.value) {
        error.textContent = 'Choose a decision.';
        error.hidden = false;
        select.focus();
        return;
      }
      if (text.length < 3) {
        error.textContent = 'Give a reason (at least 3 characters).';
        error.hidden = false;
        reason.focus();
        return;
      }
      button.disabled = true;
      try {
        const updated = await api(`${requestPath(req.id)}/votes`,
          { method: 'POST', json: { path: file.path, decision: select.value, reason: text } });
        reason.value = ''; // sent: not a draft any more
        renderDetail(updated);
        await loadRequests();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }

  async function refreshCurrent() {
    await loadRequests();
    await loadMine();
    if (state.current) {
      const req = await api(requestPath(state.current.id));
      await loadContext(req);
      renderDetail(req);
    }
  }

  async function approveAll(event) {
    // one reason, an approve vote on every file the reviewer has not voted on yet
    event.preventDefault();
    const form = $('approve-all');
    const error = form.querySelector('.vote-error');
    const reason = $('approve-all-reason');
    const button = form.querySelector('button');
    const req = state.current;
    error.hidden = true;
    const text = reason.value.trim();
    if (text.length < 3) {
      error.textContent = 'Give a reason (at least 3 characters).';
      error.hidden = false;
      reason.focus();
      return;
    }
    const myVotes = (req.votes || []).filter(isMine);
    const paths = req.files.map((f) => f.path).filter((p) => !myVotes.some((v) => v.path === p));
    button.disabled = true;
    let updated = req;
    let failure = null;
    try {
      for (const path of paths) {
        updated = await api(`${requestPath(req.id)}/votes`,
          { method: 'POST', json: { path, decision: 'approve', reason: text } });
      }
      reason.value = '';
    } catch (err) {
      failure = err;
    } finally {
      button.disabled = false;
    }
    renderDetail(updated);
    if (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
    await loadRequests();
  }

  // -- previews ---------------------------------------------------------------------------

  async function fetchPreview(req, file) {
    const key = `${req.id}\n${file.path}\n${file.sha256}`;
    if (!state.previews.has(key)) {
      const resp = await api(`${requestPath(req.id)}/preview?path=${encodeURIComponent(file.path)}`, { raw: true });
      const type = (resp.headers.get('Content-Type') || '').split(';')[0].trim().toLowerCase();
      const sniffed = resp.headers.get('X-SPE-Sniffed-Type') || 'unknown';
      const size = Number(resp.headers.get('X-SPE-File-Size') || file.size);
      state.previews.set(key, { type, sniffed, size, bytes: await resp.arrayBuffer() });
    }
    return state.previews.get(key);
  }

  async function showPreview(req, file, box) {
    box.textContent = 'Loading preview…';
    try {
      const { type, sniffed, size, bytes } = await fetchPreview(req, file);
      box.replaceChildren(el('p', {
        class: 'muted', 'data-testid': 'preview-facts',
        text: `True type (from its bytes): ${sniffed}; size: ${size.toLocaleString()} bytes.`,
      }));
      if (type === 'text/csv' || type === 'text/plain') {
        const text = new TextDecoder('utf-8').decode(bytes);
        if (type === 'text/csv') box.append(csvTable(text));
        else box.append(el('pre', { 'data-testid': 'preview-text', text }));
      } else if (type === 'image/png') {
        const url = URL.createObjectURL(new Blob([bytes], { type: 'image/png' }));
        state.blobUrls.push(url);
        box.append(el('img', { src: url, alt: `Preview of ${file.path}`, 'data-testid': 'preview-image' }));
      } else {
        box.append(el('p', { class: 'muted', text: `No preview for this type (${type || 'unknown'}).` }));
      }
      if (bytes.byteLength < file.size) {
        box.append(el('p', { class: 'muted', text: `Only the first ${bytes.byteLength.toLocaleString()} of ${Number(file.size).toLocaleString()} bytes are shown.` }));
      }
    } catch (err) {
      if (err.status === 401) return;
      box.replaceChildren(el('p', { class: 'error', text: `Preview unavailable: ${err.message}` }));
    }
  }

  function parseCsv(text, maxRows) {
    // RFC 4180: quoted fields may hold commas, doubled quotes and line breaks
    const rows = [];
    let row = [];
    let field = '';
    let quoted = false;
    let i = 0;
    for (; i < text.length && rows.length < maxRows; i += 1) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; } else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"' && field === '') quoted = true;
      else if (c === ',') { row.push(field); field = ''; } else if (c === '\n' || c === '\r') {
        if (c === '\r' && text[i + 1] === '\n') i += 1;
        row.push(field); rows.push(row); row = []; field = '';
      } else field += c;
    }
    if (rows.length < maxRows && (field !== '' || row.length)) { row.push(field); rows.push(row); }
    return { rows, more: i < text.length };
  }

  function csvTable(text) {
    const { rows, more } = parseCsv(text, PREVIEW_ROWS);
    const [head = [], ...body] = rows;
    const table = el('table', { class: 'csv', 'data-testid': 'preview-table' },
      el('thead', {}, el('tr', {}, ...head.map((cell) => el('th', { scope: 'col', text: cell })))),
      el('tbody', {}, ...body.map((r) => el('tr', {}, ...r.map((cell) => el('td', { text: cell }))))));
    const wrap = el('div', { class: 'csv-wrap' }, table);
    if (more) wrap.append(el('p', { class: 'muted', text: `Only the first ${PREVIEW_ROWS} rows are shown.` }));
    return wrap;
  }

  // -- start ------------------------------------------------------------------------------

  async function main() {
    $('sign-in').addEventListener('click', () => signIn().catch(showError));
    $('sign-out').addEventListener('click', () => signOut());
    $('refresh').addEventListener('click', () => { showError(null); refreshCurrent().catch(showError); });
    $('only-pending').addEventListener('change', renderRequests);
    $('approve-all').addEventListener('submit', (event) => approveAll(event).catch(showError));
    $('resubmit').addEventListener('click', () => ownerAction(state.current.id, 'resubmit').catch(showError));
    $('withdraw').addEventListener('click', () => ownerAction(state.current.id, 'withdraw').catch(showError));
    const params = new URLSearchParams(location.search);
    try {
      if (params.has('code') || params.has('error')) {
        setStatus('Signing in…');
        await finishSignIn(params);
      }
    } catch (err) {
      showError(err);
    }
    try {
      await showSession();
    } catch (err) {
      if (err.status !== 401) showError(err);
    }
  }

  document.addEventListener('DOMContentLoaded', () => { main().catch(showError); });
})();
