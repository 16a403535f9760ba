// nbflow report: the Copy button of "Reproduce this run" (clipboard API, else a selection and execCommand).
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var button = document.getElementById("nbflow-copy-command");
  var block = document.getElementById("nbflow-reproduce-command");
  if (!button || !block) { return; }
  function copied(ok) {
    button.textContent = ok ? "Copied" : "Select and copy";
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }
  function bySelection() {
    var range = document.createRange();
    range.selectNodeContents(block);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    copied(ok);
  }
  button.addEventListener("click", function () {
    var text = block.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(true); }, bySelection);
    } else {
      bySelection();
    }
  });
});
