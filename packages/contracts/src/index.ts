export * from './errors.js'
export * from './common.js'
export * from './events.js'
export * from './named-sessions.js'
