export { loadProjectionsConfig, type ProjectionsConfig } from './config.ts';
export { livePage } from './http/live-page.ts';
export { LivePublisher } from './live/publisher.ts';
export { SeriesState } from './live/series.ts';
export { type Projections, startProjections } from './service.ts';
