/* uet dashboard: applies the live updates the server pushes (server-sent events).
   Each message is JSON: {html: {id: innerHTML}, svg: {id: SVG children}, attr: {id: {name: value}},
   tick: n}. The server sends only what changed; everything in it was escaped server-side.
   No framework and no build step: this file is all the script the dashboard has. */
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) return;
  var SVG = "http://www.w3.org/2000/svg";
  var state = document.getElementById("live-state");

  function svgChildren(markup) {
    var doc = new DOMParser().parseFromString(
      '<svg xmlns="' + SVG + '">' + markup + "</svg>", "image/svg+xml");
    var nodes = [];
    doc.documentElement.childNodes.forEach(function (n) { nodes.push(document.importNode(n, true)); });
    return nodes;
  }

  function each(map, apply) {
    if (!map) return;
    Object.keys(map).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) apply(el, map[id]);
    });
  }

  var source = new EventSource(url);
  source.onopen = function () { if (state) state.textContent = "live"; };
  source.onerror = function () { if (state) state.textContent = "reconnecting…"; };
  source.onmessage = function (message) {
    var ops = JSON.parse(message.data);
    each(ops.html, function (el, html) { el.innerHTML = html; });
    each(ops.svg, function (el, markup) { el.replaceChildren.apply(el, svgChildren(markup)); });
    each(ops.attr, function (el, attrs) {
      Object.keys(attrs).forEach(function (name) { el.setAttribute(name, attrs[name]); });
    });
    document.body.setAttribute("data-tick", ops.tick);
  };
})();
