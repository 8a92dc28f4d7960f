// Steps: a slider with the step's label, a play button that walks through the logged
// steps, and the evolution strip (Zeiler & Fergus fig. 4): one labelled thumbnail per step.

import {el, imageEl} from "./common.js";

const FRAME_MS = 700;

// A step control over `count()` steps; `onStep(i)` draws step index i. Returns {element, set, refresh}.
export function stepControl(count, label, onStep) {
  const slider = el("input", {class: "cv-step", type: "range", min: 0, max: Math.max(0, count() - 1), value: 0,
    "aria-label": "step"});
  const text = el("span", {class: "cv-step-label"});
  const play = el("button", {type: "button", class: "cv-play", text: "\u25b6 play", title: "play through the steps"});
  let timer = null;
  const stop = () => { clearInterval(timer); timer = null; play.textContent = "\u25b6 play"; };
  const set = (i) => {
    slider.value = String(i);
    text.textContent = `${label(i)} `;
    onStep(i);
  };
  slider.addEventListener("input", () => { stop(); set(Number(slider.value)); });
  play.addEventListener("click", () => {
    if (timer) return stop();
    play.textContent = "\u275a\u275a pause";
    if (Number(slider.value) >= count() - 1) set(0);
    timer = setInterval(() => {
      const next = Number(slider.value) + 1;
      if (next >= count()) return stop();
      set(next);
    }, FRAME_MS);
  });
  const refresh = () => {
    slider.max = String(Math.max(0, count() - 1));
    slider.disabled = count() < 2;
    play.disabled = count() < 2;
  };
  refresh();
  return {element: el("span", {class: "cv-stepper"}, el("label", {class: "cv-slider"}, text, slider), play),
    set, refresh, stop, slider};
}

// The evolution strip: `steps` [{step, url}], the current index marked; click to pick.
export function evolutionStrip(strip, steps, current, onPick) {
  strip.replaceChildren(...steps.map((s, i) => {
    const fig = el("figure", {class: i === current ? "cv-current" : "", "data-step": s.step},
      imageEl(s.url, "cv-thumb", `step ${s.step}`), el("figcaption", {text: `step ${s.step}`}));
    fig.addEventListener("click", () => onPick(i));
    return fig;
  }));
  const mark = strip.querySelector(".cv-current");
  if (mark && strip.scrollWidth > strip.clientWidth) {
    strip.scrollLeft = Math.max(0, mark.offsetLeft - strip.clientWidth / 2);
  }
}
