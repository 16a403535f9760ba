// nbflow published site: sort and filter the runs tables (no library, nothing fetched).
(function () {
  "use strict";
  function value(row, i) {
    var cell = row.cells[i];
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim() : v;
  }
  function applyFilter(table) {
    var box = document.getElementById("nbflow-filter");
    var status = document.getElementById("nbflow-status-filter");
    var terms = (box ? box.value : "").toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = status ? status.value : "";
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      var ok = terms.every(function (t) { return text.indexOf(t) >= 0; });
      ok = ok && (!wanted || row.getAttribute("data-status") === wanted);
      row.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    var count = document.getElementById("nbflow-shown");
    if (count) { count.textContent = String(shown); }
  }
  function setUp(table) {
    var body = table.tBodies[0];
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, i) {
      if (th.hasAttribute("data-nosort")) { return; }
      th.classList.add("sortable");
      th.tabIndex = 0;
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.getAttribute("data-type") === "number";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = value(a, i), y = value(b, i);
          var d = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
          return ascending ? d : -d;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
    ["nbflow-filter", "nbflow-status-filter"].forEach(function (id) {
      var input = document.getElementById(id);
      if (input) { input.addEventListener("input", function () { applyFilter(table); }); }
    });
    applyFilter(table);
  }
  // The page's scripts sit in its head: wait for the tables.
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.nbflow-runs"), setUp);
  });
})();
