// Live updates for the status page: a Server-Sent Events stream of store
// changes; the server renders, this script only swaps fragments in.
(function () {
  'use strict';
  var body = document.body;
  if (!body || !window.EventSource || !window.fetch) { return; }
  var page = body.getAttribute('data-page');

  function get(url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .catch(function () { return null; });
  }

  function parse(html) {
    var t = document.createElement('template');
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function stream(url, onChange, onReconnect) {
    var es = new EventSource(url);
    var broken = false;
    es.onmessage = function (ev) {
      var c;
      try { c = JSON.parse(ev.data); } catch (e) { return; }
      onChange(c);
    };
    es.onerror = function () { broken = true; };
    es.onopen = function () {
      // Changes may have been missed while the stream was down.
      if (broken) { broken = false; onReconnect(); }
    };
  }

  if (page === 'list') {
    var pending = null;
    var refresh = function () {
      if (pending) { return; }
      pending = setTimeout(function () {
        pending = null;
        var u = new URL(window.location.href);
        u.searchParams.set('fragment', 'list');
        get(u.toString()).then(function (html) {
          if (html !== null) { document.getElementById('live').innerHTML = html; }
        });
      }, 250);
    };
    stream('/events', refresh, refresh);
  }

  if (page === 'thread') {
    var conv = body.getAttribute('data-conversation');
    var latest = body.getAttribute('data-latest') === 'true';
    var list = document.getElementById('thread');

    var place = function (id, li) {
      var old = document.getElementById('msg-' + id);
      if (old) {
        var was = old.querySelector('details.status');
        var now = li.querySelector('details.status');
        if (was && now && was.open) { now.open = true; }
        old.replaceWith(li);
        return;
      }
      if (!latest) { document.getElementById('notice').hidden = false; return; }
      var empty = list.querySelector('li.empty');
      if (empty) { empty.remove(); }
      var items = list.children;
      for (var i = 0; i < items.length; i++) {
        if (items[i].getAttribute('data-id') > id) { list.insertBefore(li, items[i]); return; }
      }
      list.appendChild(li);
      li.scrollIntoView({ block: 'nearest' });
    };

    var onChange = function (c) {
      if (!c.messageId) { return; }
      get('/fragments/messages/' + encodeURIComponent(c.messageId)).then(function (html) {
        if (html === null) { return; }
        var li = parse(html);
        if (li && li.getAttribute('data-id') === c.messageId) { place(c.messageId, li); }
      });
    };

    var reload = function () {
      var u = new URL(window.location.href);
      u.searchParams.set('fragment', 'thread');
      get(u.toString()).then(function (html) {
        if (html !== null) { list.innerHTML = html; }
      });
    };
    stream('/events?conversation=' + encodeURIComponent(conv), onChange, reload);
  }
}());
