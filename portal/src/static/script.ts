/**
 * The portal page's script, served as `/static/portal.<hash>.js` (a classic script, ES2017, no
 * build step, kept in a TS module so `tsc -b` carries it into `dist/`). It holds no formatting of
 * its own: the server's view model (view.ts) arrives over the event stream and is copied into the
 * elements named after its keys, always with `textContent`; the confirmation dialog's texts come
 * from the buttons' `data-confirm-*` attributes (html.ts), refusals in the agent's own words.
 *
 * The connection: an EventSource on /api/events (`hello` with a fresh token, `view`, `ping` every
 * few seconds). An error, or silence for three ping intervals, shows "Lost Connection to Gateway";
 * the page then probes /api/status with backoff (1 s doubling to 10 s) and, once the gateway
 * answers, reopens the stream and hides the notice when its `hello` arrives.
 *
 * The gateway's answer to an action ("Factory reset started…", a refusal) stays until the next
 * action, or until the page's mode has moved on from the one the action was sent in and the answer
 * has been shown for ANSWER_MIN_MS: the state an action starts often arrives within milliseconds
 * of its answer, and the person must still get to read what happened (issue #18).
 *
 * No backquote, dollar-brace or backslash may appear below: this is a template literal.
 */
export const PORTAL_JS = `(function () {
  'use strict';
  var tokenMeta = document.querySelector('meta[name="clgw-token"]');
  var token = tokenMeta ? tokenMeta.getAttribute('content') : '';
  var lostEl = document.getElementById('lost');
  var lostNext = document.getElementById('lost-next');
  var resultEl = document.getElementById('action-result');
  var dialog = document.getElementById('confirm');
  var codeEl = document.getElementById('presence-code');
  var confirmError = document.getElementById('confirm-error');
  var confirmOk = document.getElementById('confirm-ok');
  var pending = null;
  var es = null;
  var lost = false;
  var attempt = 0;
  var probeTimer = null;
  var countdownTimer = null;
  var pingMs = 5000;
  var lastSeen = Date.now();
  var mode = document.body.getAttribute('data-mode');
  var busy = false;
  var ANSWER_MIN_MS = 10000;
  // The mode the shown answer's action was sent in, when the answer was shown, and its removal.
  var answerMode = mode;
  var answerAt = 0;
  var answerTimer = null;

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function apply(view) {
    mode = view.mode;
    if (mode !== answerMode) retireResult();
    document.body.setAttribute('data-mode', view.mode);
    document.title = view.documentTitle;
    each('[data-field]', function (el) {
      var text = view.fields[el.getAttribute('data-field')];
      if (typeof text !== 'string') text = '';
      if (el.textContent !== text) el.textContent = text;
      if (el.hasAttribute('data-href')) el.setAttribute('href', text);
    });
    each('[data-show]', function (el) {
      el.hidden = !view.show[el.getAttribute('data-show')];
    });
    each('[data-list]', function (ul) {
      var items = view.lists[ul.getAttribute('data-list')] || [];
      var frag = document.createDocumentFragment();
      items.forEach(function (item) {
        var li = document.createElement('li');
        li.className = 'st-' + item.state;
        li.textContent = item.text;
        frag.appendChild(li);
      });
      ul.replaceChildren(frag);
    });
    var bar = document.querySelector('progress');
    if (bar) {
      if (view.percent === null) bar.removeAttribute('value');
      else bar.value = view.percent;
      bar.textContent = view.fields.updatePercent;
    }
  }

  function seen() {
    lastSeen = Date.now();
  }

  function recovered() {
    seen();
    attempt = 0;
    if (!lost) return;
    lost = false;
    clearInterval(countdownTimer);
    document.body.setAttribute('data-connection', 'ok');
    lostEl.hidden = true;
    lostNext.textContent = '';
  }

  function connect() {
    if (es) es.close();
    seen();
    es = new EventSource('/api/events');
    es.addEventListener('hello', function (e) {
      var data = JSON.parse(e.data);
      token = data.token;
      if (data.pingMs > 0) pingMs = data.pingMs;
      recovered();
    });
    es.addEventListener('view', function (e) {
      apply(JSON.parse(e.data));
      seen();
    });
    es.addEventListener('ping', seen);
    es.onerror = connectionLost;
  }

  function connectionLost() {
    if (es) {
      es.close();
      es = null;
    }
    if (!lost) {
      lost = true;
      document.body.setAttribute('data-connection', 'lost');
      lostEl.hidden = false;
    }
    scheduleProbe();
  }

  function scheduleProbe() {
    if (probeTimer !== null) return;
    var delay = Math.min(10000, 1000 * Math.pow(2, attempt));
    attempt += 1;
    var due = Date.now() + delay;
    clearInterval(countdownTimer);
    var tick = function () {
      var left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      lostNext.textContent = 'Next try in ' + left + ' s.';
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
    probeTimer = setTimeout(function () {
      probeTimer = null;
      probe();
    }, delay);
  }

  function fetchStatus() {
    var ctl = new AbortController();
    var timer = setTimeout(function () {
      ctl.abort();
    }, 5000);
    return fetch('/api/status', { cache: 'no-store', signal: ctl.signal, headers: { accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(
        function (data) {
          clearTimeout(timer);
          token = data.token;
          return data;
        },
        function (e) {
          clearTimeout(timer);
          throw e;
        },
      );
  }

  function probe() {
    clearInterval(countdownTimer);
    lostNext.textContent = 'Trying now…';
    fetchStatus().then(
      function (data) {
        apply(data.view);
        connect();
      },
      function () {
        scheduleProbe();
      },
    );
  }

  function showResult(text, refused) {
    clearTimeout(answerTimer);
    answerTimer = null;
    answerAt = Date.now();
    resultEl.textContent = text;
    resultEl.classList.toggle('refused', refused);
    if (mode !== answerMode) retireResult();
  }

  // The mode has moved on since the action: its answer goes, once shown for ANSWER_MIN_MS.
  function retireResult() {
    if (!resultEl.textContent || answerTimer !== null) return;
    answerTimer = setTimeout(function () {
      showResult('', false);
    }, Math.max(0, answerAt + ANSWER_MIN_MS - Date.now()));
  }

  // A new action: its answer replaces the last one, and lasts while the mode is this one.
  function sending(text) {
    answerMode = mode;
    showResult(text, false);
  }

  function setBusy(value) {
    busy = value;
    each('button[data-action]', function (b) {
      b.disabled = value;
    });
    confirmOk.disabled = value;
  }

  function post(action, body) {
    return fetch('/api/' + action, {
      method: 'POST',
      cache: 'no-store',
      headers: { 'content-type': 'application/json', 'x-clgw-token': token },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(
        function (data) {
          return { status: r.status, data: data, retryAfter: r.headers.get('retry-after') };
        },
        function () {
          return { status: r.status, data: {}, retryAfter: r.headers.get('retry-after') };
        },
      );
    });
  }

  // Sends an action; resolves with the refusal's message (null when accepted).
  function send(action, body, again) {
    return post(action, body).then(function (res) {
      var error = res.data && res.data.error;
      if (res.status === 403 && error && error.code === 'TOKEN_INVALID' && !again) {
        return fetchStatus().then(function () {
          return send(action, body, true);
        });
      }
      if (res.status >= 200 && res.status < 300) {
        showResult(res.data.message || 'Done.', false);
        return null;
      }
      if (res.status === 429) return 'Too many requests: wait ' + (res.retryAfter || '60') + ' s, then try again.';
      return { message: (error && error.message) || 'Refused (HTTP ' + res.status + ').', code: error && error.code };
    });
  }

  function failed() {
    showResult('The gateway did not answer the request.', true);
    connectionLost();
  }

  function act(action) {
    setBusy(true);
    sending('Sending…');
    send(action, {}, false)
      .then(function (refusal) {
        if (refusal) showResult(typeof refusal === 'string' ? refusal : refusal.message, true);
      }, failed)
      .then(function () {
        setBusy(false);
      });
  }

  // Reboot and Factory Reset: a dialog asks for the code shown on the gateway's own screen.
  function openConfirm(button) {
    pending = button.getAttribute('data-action');
    document.getElementById('confirm-title').textContent = button.getAttribute('data-confirm-title');
    document.getElementById('confirm-text').textContent = button.getAttribute('data-confirm-text');
    confirmOk.textContent = button.getAttribute('data-confirm-button');
    confirmOk.disabled = false;
    confirmError.textContent = '';
    codeEl.value = '';
    dialog.showModal();
    codeEl.focus();
  }

  function closeConfirm() {
    pending = null;
    if (dialog.open) dialog.close();
  }

  document.getElementById('confirm-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var action = pending;
    var code = codeEl.value.trim();
    if (!action || busy) return;
    if (!code) {
      confirmError.textContent = "Enter the code from the gateway's screen.";
      return;
    }
    var stuck = false;
    setBusy(true);
    sending('');
    confirmError.textContent = 'Sending…';
    send(action, { code: code }, false)
      .then(function (refusal) {
        if (!refusal) {
          closeConfirm();
          return;
        }
        confirmError.textContent = typeof refusal === 'string' ? refusal : refusal.message;
        codeEl.value = '';
        codeEl.focus();
        // Locked, or no longer offered: another code would be refused as well.
        stuck = refusal.code === 'PRESENCE_LOCKED' || refusal.code === 'NOT_ALLOWED';
      }, function () {
        closeConfirm();
        failed();
      })
      .then(function () {
        setBusy(false);
        confirmOk.disabled = stuck;
      });
  });
  document.getElementById('confirm-cancel').addEventListener('click', closeConfirm);
  dialog.addEventListener('close', function () {
    pending = null;
  });

  each('button[data-action]', function (b) {
    b.addEventListener('click', function () {
      if (busy) return;
      if (b.hasAttribute('data-confirm-title')) openConfirm(b);
      else act(b.getAttribute('data-action'));
    });
  });

  setInterval(function () {
    if (!lost && Date.now() - lastSeen > 3 * pingMs) connectionLost();
  }, 1000);
  connect();
})();
`;
