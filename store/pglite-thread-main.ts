/**
 * The embedded store's thread (pglite-thread.ts starts it): opens PGlite on dataDir, then runs each message in
 * arrival order and answers it; a failure to open is reported instead of `ready`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openPGlite } from './pglite-store.js';
import { type Call, fieldsOf } from './pglite-thread.js';

const port = parentPort;
if (port === null) throw new Error('pglite-thread-main runs as a worker thread (PGliteThread.start)');
const { dataDir, sharedBuffers } = workerData as { dataDir: string; sharedBuffers?: string };
try {
  const db = await openPGlite(dataDir, sharedBuffers);
  let turn: Promise<unknown> = Promise.resolve();
  port.on('message', (m: Call) => {
    turn = turn.then(async () => {
      try {
        if (m.op === 'query') port.postMessage({ id: m.id, rows: (await db.query(m.text as string, m.params)).rows });
        else if (m.op === 'exec') {
          await db.exec(m.text as string);
          port.postMessage({ id: m.id, rows: [] });
        } else {
          await db.close();
          port.postMessage({ id: m.id, rows: [] });
        }
      } catch (err) {
        port.postMessage({ id: m.id, error: fieldsOf(err) });
      }
    });
  });
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ failed: fieldsOf(err) });
}
