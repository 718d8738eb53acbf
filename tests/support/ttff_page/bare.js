// hls.js with its defaults playing ?src=, started by the Play button (as a viewer's click).
"use strict";
const video = document.getElementById("video");
const hls = new Hls();
hls.loadSource(new URLSearchParams(location.search).get("src"));
hls.attachMedia(video);
document.getElementById("play").addEventListener("click", () => video.play());
