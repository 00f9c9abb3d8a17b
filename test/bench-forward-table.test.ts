// The forwarding benchmark's CPU rows: the machine's CPU per request per route, the tunnel's
// share (route minus direct), and the budget 1.2 × ssh's rate leaves, from fixed samples.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DownloadJob, DownloadSample, WrkJob, WrkSample } from '../bench/cli/forward-jobs';
import { downloadCpu, floorNote, formatForwardTable, wrkCpu } from '../bench/cli/forward-table';
import { processCpuSeconds } from '../bench/cli/cpu';

function sample(requestsPerSecond: number, machineUsPerRequest: number): WrkSample {
  return {
    ok: true,
    requestsPerSecond,
    p99Ms: 100,
    requests: requestsPerSecond * 10,
    errors: 0,
    connectErrors: 0,
    errorDetail: '',
    error: null,
    busyCores: 1.98,
    cores: 2,
    machineUsPerRequest,
    processUsPerRequest: machineUsPerRequest >= 95 ? 40 : null,
  };
}

const job: WrkJob = {
  samples: {
    direct: [sample(60_000, 33), sample(62_000, 32), sample(58_000, 34)],
    tsmux: [sample(20_000, 100), sample(21_000, 95), sample(19_000, 105)],
    ssh: [sample(25_000, 80), sample(26_000, 75), sample(24_000, 85)],
  },
  skipped: {},
  floor: [{ wrk: sample(70_000, 28), usPerRequest: 13.5 }],
};

describe('bench: forwarding CPU rows', () => {
  test('the tunnel costs what its route costs beyond the direct route', () => {
    const cpu = wrkCpu(job);
    assert.equal(cpu.machine('tsmux'), 100);
    assert.equal(cpu.tunnel('tsmux'), 100 - 33);
    assert.equal(cpu.tunnel('ssh'), 80 - 33);
    // 2 cores at 1.2 × 25,000 req/s: 66.7 µs per request, of which wrk and nginx take 33.
    assert.ok(Math.abs(cpu.budget! - (2e6 / 30_000 - 33)) < 1e-9);
  });

  test('the table shows both CPU rows, and the note sets the floor beside the budget', () => {
    const table = formatForwardTable({ wrk: job, download: null, restart: null, wrkSeconds: 10 });
    assert.match(
      table,
      /\| wrk: machine CPU per request, µs \(cores busy\) \| 100\.0 \(1\.98 of 2\) \| 80\.0 \(1\.98 of 2\) \| 33\.0 \(1\.98 of 2\) \|/,
    );
    assert.match(
      table,
      /\| wrk: tunnel CPU per request, µs \(machine − direct\) \| 67\.0 \| 47\.0 \| {2}\| 1\.2 × ssh's rate leaves 33\.7 \| 1\.43× \|/,
    );
    assert.match(floorNote(job)!, /costs 13\.5 µs of its own CPU .* cost 40\.0 µs together\. .* so 27\.0 µs .* against the 33\.7 µs/);
    assert.equal(floorNote({ ...job, floor: 'wrk not found' }), 'Node floor not measured: wrk not found.');
  });

  test('without an ssh route there is no budget', () => {
    const noSsh: WrkJob = { ...job, samples: { direct: job.samples.direct, tsmux: job.samples.tsmux } };
    assert.equal(wrkCpu(noSsh).budget, null);
    assert.equal(wrkCpu(noSsh).tunnel('ssh'), null);
  });

  test('downloads: the tunnel CPU per GB beyond direct, and what 1.5 × ssh leaves', () => {
    const dl = (rate: number, cpuSecondsPerGB: number): DownloadSample => ({
      ok: true,
      seconds: 104.8576 / rate,
      rate,
      error: null,
      busyCores: 1.9,
      cores: 2,
      cpuSecondsPerGB,
    });
    const job: DownloadJob = {
      bytes: 100 * 1024 * 1024,
      samples: { direct: [dl(2500, 0.6)], 'tsmux -L': [dl(650, 2.9)], 'ssh -L': [dl(600, 3.1)] },
      skipped: {},
    };
    const cpu = downloadCpu(job);
    assert.ok(Math.abs(cpu.tunnel('tsmux -L')! - 2.3) < 1e-9);
    assert.ok(Math.abs(cpu.tunnel('ssh -L')! - 2.5) < 1e-9);
    // 2 cores at 0.9 GB/s: 2.22 CPU seconds per GB, of which curl and nginx take 0.6.
    assert.ok(Math.abs(cpu.budget! - (2 / 0.9 - 0.6)) < 1e-9);
    const table = formatForwardTable({ wrk: null, download: job, restart: null, wrkSeconds: 10 });
    assert.match(
      table,
      /\| download: machine CPU s per GB \(cores busy\) \| 2\.90 \(1\.90 of 2\) \| 3\.10 \(1\.90 of 2\) \| 0\.60 \(1\.90 of 2\) \|/,
    );
    assert.match(
      table,
      /\| download: tunnel CPU s per GB \(machine − direct\) \| 2\.30 \| 2\.50 \| {2}\| 1\.5 × ssh's rate leaves 1\.62 \| 0\.92× \|/,
    );
  });

  test("a process's CPU time is read from /proc where there is one", { skip: process.platform !== 'linux' && 'Linux only' }, () => {
    const start = Date.now();
    while (Date.now() - start < 60);
    const seconds = processCpuSeconds(process.pid);
    assert.ok(seconds !== null && seconds > 0);
    assert.equal(processCpuSeconds(2 ** 30), null);
  });
});
