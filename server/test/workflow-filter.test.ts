import test from 'ava';
import { workflowMatcher } from '../src/domain/workflow-filter.ts';

const workflows = ['PATH_RESULTS', 'PATH_ORDERS', 'RAD_RESULTS', 'GP2GP'];
const selected = (filter: string): string[] => workflows.filter(workflowMatcher(filter)!);

test('all six workflow_filter forms', (t) => {
  t.deepEqual(selected('PATH_RESULTS'), ['PATH_RESULTS']);
  t.deepEqual(selected('!PATH_RESULTS'), ['PATH_ORDERS', 'RAD_RESULTS', 'GP2GP']);
  t.deepEqual(selected('PATH_*'), ['PATH_RESULTS', 'PATH_ORDERS']);
  t.deepEqual(selected('!PATH_*'), ['RAD_RESULTS', 'GP2GP']);
  t.deepEqual(selected('*RESULTS*'), ['PATH_RESULTS', 'RAD_RESULTS']);
  t.deepEqual(selected('!*RESULTS*'), ['PATH_ORDERS', 'GP2GP']);
});

test('an empty filter is no filter', (t) => {
  t.is(workflowMatcher(undefined), undefined);
  t.is(workflowMatcher('  '), undefined);
});
