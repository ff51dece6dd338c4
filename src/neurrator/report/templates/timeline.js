(function () {
  "use strict";
  var source = document.getElementById("timeline-data");
  var root = document.getElementById("tl");
  if (!source || !root) { return; }
  var data = JSON.parse(source.textContent);
  var windows = data.windows;
  if (!windows.length) { return; }
  var frames = windows.map(function (w) { return w[0]; });
  var slider = document.getElementById("tl-slider");
  var el = function (id) { return document.getElementById(id); };

  function nearest(f) {
    var lo = 0, hi = frames.length - 1;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (frames[mid] < f) { lo = mid + 1; } else { hi = mid; }
    }
    if (lo > 0 && f - frames[lo - 1] <= frames[lo] - f) { lo -= 1; }
    return lo;
  }

  function when(f) {
    return data.frame_rate ? "frame " + f + " (" + (f / data.frame_rate).toFixed(2) + " s)" : "image " + f;
  }

  function showFrame(f) {
    var box = el("tl-frame");
    if (!box || !data.sprite) { return; }
    var s = data.sprite, scale = box.clientWidth / s.tw;
    var tile = Math.min(s.n - 1, Math.round(f / s.step));
    var col = tile % s.columns, row = Math.floor(tile / s.columns);
    box.style.backgroundSize = (s.columns * s.tw * scale) + "px auto";
    box.style.backgroundPosition = (-col * s.tw * scale) + "px " + (-row * s.th * scale) + "px";
  }

  function showRaster(repeat, start) {
    var strips = root.querySelectorAll(".tl-strip");
    var shown = null;
    for (var k = 0; k < strips.length; k++) {
      var mine = strips[k].getAttribute("data-repeat") === String(repeat) && start !== null;
      strips[k].hidden = !mine;
      if (mine) { shown = strips[k]; }
    }
    el("tl-no-raster").hidden = shown !== null;
    if (!shown) { return; }
    var view = shown.querySelector(".tl-raster"), mark = shown.querySelector(".tl-decoded");
    var nBins = +shown.getAttribute("data-bins"), sx = data.bin_px;
    var lo = Math.max(0, Math.min(start - data.context, nBins - 2 * data.context - data.window));
    view.style.backgroundPosition = (-lo * sx) + "px 0px";
    mark.style.left = ((start - lo) * sx) + "px";
    mark.style.width = (data.window * sx) + "px";
  }

  function show(f) {
    var i = nearest(f), w = windows[i];
    el("tl-position").textContent = when(f);
    el("tl-window").textContent = when(w[0]) + (w[1] === null ? "" : ", repeat " + w[1]) +
      " · window " + (i + 1) + " of " + windows.length;
    el("tl-sentence").textContent = w[2] === null ? "— (not narrated)" : w[2];
    var refs = el("tl-refs");
    while (refs.firstChild) { refs.removeChild(refs.firstChild); }
    if (!w[3].length) { var none = document.createElement("li"); none.textContent = "—"; refs.appendChild(none); }
    w[3].forEach(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      refs.appendChild(li);
    });
    el("tl-score").textContent = w[4] === null ? "—" : w[4].toFixed(3);
    var meter = el("tl-meter");
    meter.hidden = w[4] === null;
    if (w[4] !== null) { meter.value = Math.max(0, w[4]); }
    showFrame(w[0]);
    showRaster(w[1], w[5]);
  }

  function step(direction) {
    var i = nearest(+slider.value) + direction;
    i = Math.max(0, Math.min(windows.length - 1, i));
    slider.value = frames[i];
    show(frames[i]);
  }

  slider.addEventListener("input", function () { show(+slider.value); });
  el("tl-prev").addEventListener("click", function () { step(-1); });
  el("tl-next").addEventListener("click", function () { step(1); });
  show(+slider.value);
})();
