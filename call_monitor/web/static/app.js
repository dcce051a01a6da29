// The one piece of script of our own: a browser notification when the staff home hears of a
// new callback (htmx refreshes the list itself), once the person has allowed notifications.
document.addEventListener("DOMContentLoaded", function () {
  var allow = document.getElementById("notify-allow");
  if (!allow || !("Notification" in window)) return;
  if (Notification.permission === "default") {
    allow.hidden = false;
    allow.addEventListener("click", function () {
      Notification.requestPermission().then(function () { allow.hidden = true; });
    });
  }
  document.body.addEventListener("htmx:sseMessage", function (event) {
    if (Notification.permission !== "granted") return;
    var data = {};
    try { data = JSON.parse(event.detail.data); } catch (e) { return; }
    if (data.kind === "created" || data.kind === "memo" || data.kind === "overdue") {
      new Notification(document.body.dataset.notifyTitle);
    }
  });
});
