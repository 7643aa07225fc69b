// Drives the ioplex vscp_link server with node-vscp-tcp, an independent VSCP client.
//
// Usage: node interop.js HOST PORT USER PASSWORD
// Prints one JSON object per line on stdout; waits for a line "go" on stdin before reading
// the events the test queued for it.
'use strict';

const readline = require('readline');
const VscpClient = require('node-vscp-tcp');

const [host, port, user, password] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const lines = readline.createInterface({ input: process.stdin });
const waitFor = (word) => new Promise((resolve) => {
  lines.on('line', (line) => { if (line.trim() === word) resolve(); });
});

async function main() {
  const client = new VscpClient();
  const loopEvents = [];
  client.addEventListener((e) => {
    loopEvents.push(e);
    out({ step: 'event', event: { vscpClass: e.vscpClass, vscpType: e.vscpType, vscpObId: e.vscpObId, vscpGuid: e.vscpGuid, vscpData: e.vscpData } });
  });

  await client.connect({ host, port: Number(port), timeout: 5000 });
  out({ step: 'user', ok: await client.user({ username: user }) });
  out({ step: 'pass', ok: await client.password({ password }) });
  out({ step: 'version', version: await client.getRemoteVersion() });
  out({ step: 'noop', ok: await client.noop() });
  out({ step: 'chid', chid: await client.getChannelID() });
  const go = waitFor('go');
  out({ step: 'ready' });
  await go;

  out({ step: 'chkdata', count: await client.getPendingEventCount() });
  const events = await client.getEvents({ count: 2 });
  out({ step: 'retr', events: events.map((e) => ({ vscpHead: e.vscpHead, vscpClass: e.vscpClass, vscpType: e.vscpType, vscpObId: e.vscpObId, vscpGuid: e.vscpGuid, vscpData: e.vscpData })) });
  out({ step: 'chkdata-after', count: await client.getPendingEventCount() });

  // An event object (written by node-vscp: ISO datetime with milliseconds, decimal data)
  // and a hand-written legacy line.
  out({ step: 'send-object', ok: await client.sendEvent({ event: { vscpHead: 96, vscpClass: 10, vscpType: 6, vscpData: [0x88, 0x81, 0x00, 0xEB] } }) });
  out({ step: 'send-string', ok: await client.sendEvent({ event: '0,20,3,,,,-,0x00,0x01,0x23' }) });
  out({ step: 'interfaces', interfaces: await client.getInterfaces() });

  const looped = waitFor('stop');
  await client.startRcvLoop();
  out({ step: 'loop' });
  await looped;
  await client.stopRcvLoop();
  await client.disconnect();
  out({ step: 'done', loopEvents: loopEvents.length });
  lines.close();
}

main().catch((err) => {
  out({ step: 'error', error: String(err && err.message ? err.message : JSON.stringify(err)) });
  process.exit(1);
});
