export { S3Gateway, type GatewayOptions } from './server.js';
