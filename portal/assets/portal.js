// Copy buttons on code blocks. No network access, no third-party code.
(function () {
  "use strict";
  document.querySelectorAll("main pre > code").forEach(function (code) {
    var pre = code.parentElement;
    if (pre.classList.contains("mermaid")) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(code.innerText).then(done, function () {});
      } else {
        var range = document.createRange(); range.selectNodeContents(code);
        var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* ignore */ }
        sel.removeAllRanges();
      }
    });
    pre.classList.add("has-copy");
    pre.appendChild(button);
  });
})();
