// Renders the <pre class="mermaid"> blocks generated from the spec's x-lifecycle definitions.
(function () {
  "use strict";
  if (typeof mermaid === "undefined") { document.body.dataset.diagrams = "failed"; return; }
  mermaid.initialize({
    startOnLoad: false,
    securityLevel: "strict",
    theme: "default",
    fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
    sequence: { mirrorActors: false, wrap: false, noteAlign: "center" },
    state: { useMaxWidth: true },
  });
  mermaid.run({ querySelector: "pre.mermaid" })
    .then(function () { document.body.dataset.diagrams = "rendered"; })
    .catch(function (err) { document.body.dataset.diagrams = "failed"; console.error("diagram failed", err); });
})();
