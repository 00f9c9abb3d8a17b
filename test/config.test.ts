// resolveLimits: options merged over DEFAULTS and checked; options that set no limit share
// one frozen result (a client per connection pays for neither the copy nor the checks).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, resolveLimits } from '../src/config';
import { MuxError } from '../src/errors';

describe('resolveLimits', () => {
  test('options that set no limit share one frozen copy of the defaults', () => {
    const a = resolveLimits();
    const b = resolveLimits({});
    const c = resolveLimits({ maxStreams: undefined });
    assert.equal(b, a);
    assert.equal(c, a);
    assert.ok(Object.isFrozen(a));
    assert.deepEqual({ ...a }, { ...DEFAULTS });
    // Keys that are not limits (a client's host, hello, tls...) do not matter to the limits.
    assert.equal(resolveLimits({ hello: { token: 'x' } } as never), a);
  });

  test('options that set a limit get their own result, with the limits derived from it', () => {
    const shared = resolveLimits({});
    const own = resolveLimits({ maxBufferedBytes: 4 * 1024 * 1024 });
    assert.notEqual(own, shared);
    assert.equal(own.maxBufferedBytes, 4 * 1024 * 1024);
    assert.equal(own.maxConnectionWindow, 1024 * 1024);
    assert.equal(shared.maxBufferedBytes, DEFAULTS.maxBufferedBytes, 'the shared defaults are untouched');
  });

  test('a bad limit is still ERR_INVALID_CONFIG after the defaults were shared', () => {
    resolveLimits({});
    assert.throws(
      () => resolveLimits({ initialWindow: 10 }),
      (err) => err instanceof MuxError && err.code === 'ERR_INVALID_CONFIG',
    );
  });
});
