// The Roster console's only script: "select all" boxes. Every page works
// without it.
document.addEventListener("change", (e) => {
  const all = e.target.closest("input[data-select-all]");
  if (!all) return;
  const form = all.form;
  for (const box of form.querySelectorAll('input[type=checkbox][name="' + all.dataset.selectAll + '"]')) {
    box.checked = all.checked;
  }
});
