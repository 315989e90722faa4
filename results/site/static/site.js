// The report site's only script (local, no dependency). Each <video> gets a data-state
// attribute, "loaded" once the browser has decoded its first frame or "error" when it cannot
// play it; a video that cannot play says so and keeps its download link.
(function () {
  "use strict";
  function loaded(v) { v.dataset.state = "loaded"; }
  function failed(v) {
    v.dataset.state = "error";
    var p = document.createElement("p");
    p.className = "unplayable";
    p.textContent = "This browser cannot play this video (H.264 MP4); download it instead.";
    v.insertAdjacentElement("afterend", p);
  }
  document.querySelectorAll("video").forEach(function (v) {
    v.dataset.state = "loading";
    if (v.error) { failed(v); return; }
    if (v.readyState >= 2) { loaded(v); return; }
    v.addEventListener("loadeddata", function () { loaded(v); }, { once: true });
    v.addEventListener("error", function () { failed(v); }, { once: true });
  });
})();
