// Live updates for the status page: a Server-Sent Events stream of store
// changes; the server renders, this script only swaps fragments in. It never
// moves the reader: new messages scroll into view only when the reader is
// already at the bottom, else a "new messages" pill counts them.
(function () {
  'use strict';
  var body = document.body;
  if (!body || !window.fetch) { return; }
  var page = body.getAttribute('data-page');

  function get(url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { return r.ok ? r.text().then(function (t) { return { html: t, older: r.headers.get('X-Older') }; }) : null; })
      .catch(function () { return null; });
  }

  function parseAll(html) {
    var t = document.createElement('template');
    t.innerHTML = html.trim();
    return Array.prototype.slice.call(t.content.children);
  }

  // stream opens an EventSource, shows the "paused" banner while it is
  // down, and calls onReconnect when it is back (changes may have been
  // missed meanwhile).
  function stream(url, onChange, onReconnect) {
    if (!window.EventSource) { return; }
    var banner = document.getElementById('conn');
    var broken = false;
    var open = function () {
      var es = new EventSource(url);
      es.onmessage = function (ev) {
        var c;
        try { c = JSON.parse(ev.data); } catch (e) { return; }
        onChange(c);
      };
      es.onerror = function () {
        broken = true;
        if (banner) { banner.hidden = false; }
        if (es.readyState === 2) {
          // The server refused the stream (not a dropped connection): the
          // browser gives up, so try again ourselves.
          es.close();
          setTimeout(open, 5000);
        }
      };
      es.onopen = function () {
        if (banner) { banner.hidden = true; }
        if (broken) { broken = false; onReconnect(); }
      };
    };
    open();
  }

  // ---- times and days, in the browser's time zone ----

  var pad = function (n) { return (n < 10 ? '0' : '') + n; };
  var utcText = function (d) {
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  };
  var dayStart = function (d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime(); };
  var dayLabel = function (d) {
    var days = Math.round((dayStart(new Date()) - dayStart(d)) / 86400000);
    if (days === 0) { return 'Today'; }
    if (days === 1) { return 'Yesterday'; }
    if (days > 1 && days < 7) { return d.toLocaleDateString(undefined, { weekday: 'long' }); }
    return d.toLocaleDateString(undefined, { day: 'numeric', month: 'long', year: 'numeric' });
  };

  // localTimes shows every <time> under root as local HH:MM (timelines
  // with seconds), the full UTC time on hover.
  function localTimes(root) {
    var ts = root.querySelectorAll('time[datetime]');
    for (var i = 0; i < ts.length; i++) {
      var t = ts[i];
      if (t.getAttribute('data-local')) { continue; }
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) { continue; }
      var hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
      var inTimeline = t.closest('.timeline');
      t.textContent = inTimeline ? hm + ':' + pad(d.getSeconds()) : hm;
      if (t.classList.contains('when') && dayStart(d) !== dayStart(new Date())) {
        // A time away from today (a scheduled send): say the day too.
        t.textContent = dayLabel(d) + ' ' + hm;
      }
      if (t.closest('.conv')) {
        // A list row: the time today, else the day.
        t.textContent = dayStart(d) === dayStart(new Date()) ? hm : dayLabel(d);
      }
      t.title = utcText(d);
      t.setAttribute('data-local', '1');
    }
  }

  // days puts a separator before the first message of each local day.
  function days(list) {
    var seps = list.querySelectorAll('li.day');
    for (var i = 0; i < seps.length; i++) { seps[i].remove(); }
    var prev = '';
    var items = list.querySelectorAll('li.msg');
    for (var j = 0; j < items.length; j++) {
      var t = items[j].querySelector('.meta time[datetime]');
      if (!t) { continue; }
      var d = new Date(t.getAttribute('datetime'));
      var key = d.toDateString();
      if (key === prev) { continue; }
      prev = key;
      var li = document.createElement('li');
      li.className = 'day';
      var span = document.createElement('span');
      span.textContent = dayLabel(d);
      li.appendChild(span);
      items[j].parentNode.insertBefore(li, items[j]);
    }
  }

  // ---- the conversation list ----

  if (page === 'list') {
    localTimes(document);
    var pending = null;
    var refresh = function () {
      if (pending) { return; }
      pending = setTimeout(function () {
        pending = null;
        var u = new URL(window.location.href);
        u.searchParams.set('fragment', 'list');
        get(u.toString()).then(function (r) {
          if (r === null) { return; }
          var live = document.getElementById('live');
          // Keep keyboard focus on the same row (or link) across the swap.
          var a = document.activeElement;
          var row = a && live.contains(a) && a.closest('li[data-id]');
          var rowID = row ? row.getAttribute('data-id') : null;
          var cls = !row && a && live.contains(a) && a.classList.length ? a.classList[0] : null;
          live.innerHTML = r.html;
          localTimes(live);
          var back = null;
          if (rowID) { back = live.querySelector('li[data-id="' + rowID + '"] a'); }
          if (!back && cls) { back = live.querySelector('.' + cls); }
          if (back) { back.focus({ preventScroll: true }); }
        });
      }, 250);
    };
    stream('/events', refresh, refresh);
  }

  // ---- a thread ----

  if (page === 'thread') {
    var conv = body.getAttribute('data-conversation');
    var latest = body.getAttribute('data-latest') === 'true';
    var list = document.getElementById('thread');
    var pill = document.getElementById('pill');
    var announce = document.getElementById('announce');
    var unseen = 0;
    var root = document.scrollingElement || document.documentElement;

    var atBottom = function () { return root.scrollHeight - (root.scrollTop + window.innerHeight) < 80; };
    var toBottom = function () { window.scrollTo(0, root.scrollHeight); };
    var showPill = function () {
      pill.querySelector('.n').textContent = unseen;
      pill.lastChild.textContent = unseen === 1 ? ' new message' : ' new messages';
      pill.hidden = unseen === 0;
    };

    localTimes(list);
    days(list);

    // Open at the newest message (unless the address names one), and stay
    // there while images above it load, until the reader scrolls.
    var pinned = latest && !window.location.hash;
    if (pinned) { toBottom(); }
    var unpin = function () { pinned = false; };
    ['wheel', 'touchstart', 'keydown', 'mousedown'].forEach(function (ev) {
      window.addEventListener(ev, unpin, { passive: true, once: true });
    });
    document.addEventListener('load', function () { if (pinned) { toBottom(); } }, true);

    window.addEventListener('scroll', function () {
      if (unseen > 0 && atBottom()) { unseen = 0; showPill(); }
    }, { passive: true });
    pill.addEventListener('click', function (ev) {
      if (!latest) { return; } // the link opens the newest page
      ev.preventDefault();
      unseen = 0;
      showPill();
      toBottom();
      document.getElementById('newest').focus({ preventScroll: true });
    });

    // Older messages load as the reader scrolls up to the top.
    var older = document.getElementById('older');
    var loading = false;
    var loadOlder = function () {
      if (loading || !older) { return; }
      loading = true;
      var u = new URL(window.location.href);
      u.hash = '';
      u.searchParams.delete('at');
      u.searchParams.set('before', older.getAttribute('data-before'));
      u.searchParams.set('fragment', 'thread');
      get(u.toString()).then(function (r) {
        loading = false;
        if (r === null) { return; }
        var h = root.scrollHeight, top = root.scrollTop;
        var first = list.firstElementChild;
        parseAll(r.html).forEach(function (li) {
          if (li.classList.contains('empty') || document.getElementById(li.id)) { return; }
          list.insertBefore(li, first);
        });
        localTimes(list);
        days(list);
        window.scrollTo(0, top + root.scrollHeight - h);
        if (r.older) {
          older.setAttribute('data-before', r.older);
        } else {
          older.parentNode.remove();
          older = null;
        }
      });
    };
    if (older && window.IntersectionObserver) {
      new IntersectionObserver(function (es) {
        if (es[0].isIntersecting && !pinned) { loadOlder(); }
      }).observe(older);
      older.addEventListener('click', function (ev) { ev.preventDefault(); loadOlder(); });
    }

    var place = function (id, li) {
      var old = document.getElementById('msg-' + id);
      if (old) {
        var was = old.querySelector('details.status');
        var now = li.querySelector('details.status');
        if (was && now && was.open) { now.open = true; }
        old.replaceWith(li);
        localTimes(li);
        return;
      }
      var tell = li.querySelector('.sender');
      var text = li.querySelector('.text, .caption');
      announce.textContent = 'New message' + (li.classList.contains('inbound') && tell ? ' from ' + tell.textContent : '') +
        (text ? ': ' + text.textContent : '');
      if (!latest) { unseen++; showPill(); return; }
      var follow = atBottom();
      var empty = list.querySelector('li.empty');
      if (empty) { empty.remove(); }
      var items = list.querySelectorAll('li.msg');
      var placed = false;
      for (var i = 0; i < items.length; i++) {
        if (items[i].getAttribute('data-id') > id) { list.insertBefore(li, items[i]); placed = true; break; }
      }
      if (!placed) { list.appendChild(li); }
      localTimes(li);
      days(list);
      if (follow) { toBottom(); } else { unseen++; showPill(); }
    };

    var fetchOne = function (id) {
      get('/fragments/messages/' + encodeURIComponent(id)).then(function (r) {
        if (r === null) { return; }
        var li = parseAll(r.html)[0];
        if (li && li.getAttribute('data-id') === id) { place(id, li); }
      });
    };
    var onChange = function (c) { if (c.messageId) { fetchOne(c.messageId); } };

    // After a reconnect, what changed meanwhile is merged in, never
    // swapped wholesale (that would move the reader).
    var reload = function () {
      if (!latest) { return; }
      var u = new URL(window.location.href);
      u.hash = '';
      u.searchParams.set('fragment', 'thread');
      get(u.toString()).then(function (r) {
        if (r === null) { return; }
        parseAll(r.html).forEach(function (li) {
          var id = li.getAttribute('data-id');
          if (id) { place(id, li); }
        });
      });
    };
    stream('/events?conversation=' + encodeURIComponent(conv), onChange, reload);
  }
}());
