// The reporter of `npm test`: node:test's `dot` reporter (a dot per test, then every failure
// in full), followed by the run's closing counts in TAP's form (`# tests 499`, `# pass 499`,
// `# fail 0`, ...), which CI reads and `dot` alone leaves out.
import { dot } from 'node:test/reporters';

export default async function* dotWithCounts(source) {
  const counts = [];
  async function* watch() {
    for await (const event of source) {
      if (event.type === 'test:diagnostic' && event.data.nesting === 0) counts.push(event.data.message);
      yield event;
    }
  }
  yield* dot(watch());
  yield `\n${counts.map((message) => `# ${message}\n`).join('')}`;
}
