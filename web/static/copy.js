// Copy buttons: each button with data-copy="ID" copies the text of the
// element with that id. Without JavaScript the buttons stay hidden and the
// text can be selected by hand.
document.querySelectorAll("button.copy").forEach(function (b) {
  var el = document.getElementById(b.dataset.copy);
  if (!el || !navigator.clipboard) return;
  b.hidden = false;
  b.addEventListener("click", function () {
    navigator.clipboard.writeText(el.textContent.trim()).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    });
  });
});
