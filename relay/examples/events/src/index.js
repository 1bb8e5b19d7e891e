// Counts page views by path and country, the way Analytics Engine code is written:
// writeDataPoint is called and not awaited, and the response goes back at once.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const started = Date.now();
    const body = `Hello from ${url.pathname}\n`;

    env.EVENTS.writeDataPoint({
      blobs: [url.pathname, request.method, request.cf?.country ?? "XX"],
      doubles: [1, body.length, Date.now() - started],
      indexes: [url.hostname],
    });

    return new Response(body, { headers: { "Content-Type": "text/plain; charset=utf-8" } });
  },
};
