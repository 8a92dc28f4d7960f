// TensorBoard's reload, seen from inside the plugin's iframe. TensorBoard's frontend
// answers a "experimental.bootstrap" message carrying a MessagePort, then broadcasts
// "experimental.DataReloaded" on that port whenever it reloads (auto-reload and the
// reload button). Messages are JSON strings {type, id, payload, error, isReply}; we
// reply to each so the host's promise settles.

const BOOTSTRAP = "experimental.bootstrap";
const DATA_RELOADED = "experimental.DataReloaded";

export function onHostReload(callback) {
  if (!window.parent || window.parent === window || typeof MessageChannel === "undefined") return false;
  const channel = new MessageChannel();
  channel.port1.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (!message || message.isReply) return;
    channel.port1.postMessage(JSON.stringify({type: message.type, id: message.id, payload: null, error: null,
      isReply: true}));
    if (message.type === DATA_RELOADED) callback();
  });
  channel.port1.start();
  window.parent.postMessage(BOOTSTRAP, "*", [channel.port2]);
  return true;
}
