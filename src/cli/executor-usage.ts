/** `millpond executor`'s usage line, apart from executor.ts so the CLI shows it without loading the engine. */
export const EXECUTOR_USAGE = 'executor --redis redis://H:P [--slots N] [--queue NAME] [--host NAME] [--mgmtd tcp://H:P[,..]] [--metrics-listen HOST:PORT --secret-file F]';
