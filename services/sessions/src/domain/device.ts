import { UAParser } from 'ua-parser-js'
import { isbot } from 'isbot'

export interface Device {
  deviceType: 'desktop' | 'mobile' | 'tablet' | 'bot' | 'unknown'
  browser: string
  os: string
}

const clip = (s: string | undefined) => (s ?? '').slice(0, 64) || 'unknown'

/** Device fields of a login session, from its user agent (ua-parser-js, isbot for crawlers). */
export function parseDevice(userAgent: string): Device {
  const ua = new UAParser(userAgent).getResult()
  const browser = clip([ua.browser.name, ua.browser.major].filter(Boolean).join(' '))
  const os = clip([ua.os.name, ua.os.version].filter(Boolean).join(' '))
  if (!userAgent) return { deviceType: 'unknown', browser, os }
  if (isbot(userAgent)) return { deviceType: 'bot', browser, os }
  if (ua.device.type === 'mobile' || ua.device.type === 'tablet') return { deviceType: ua.device.type, browser, os }
  if (ua.os.name || ua.browser.name) return { deviceType: 'desktop', browser, os }
  return { deviceType: 'unknown', browser, os }
}
