/** The DataFrame suite (dataframe-suite.ts) on the local executor: worker processes on this machine. */
import { dataframeSuite } from './dataframe-suite.js';

dataframeSuite(async () => ({}));
