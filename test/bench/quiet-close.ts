import { close as closeClients, type MqttClient } from '../helpers/mqtt.ts'

/**
 * Closes bench clients. A reset arriving after MQTT.js force-closed a client
 * reaches a socket without an error listener and would end the whole run:
 * keep one on.
 */
export async function closeQuietly (...clients: MqttClient[]): Promise<void> {
  for (const c of clients) (c as MqttClient & { stream?: NodeJS.EventEmitter }).stream?.on('error', () => {})
  await closeClients(...clients)
}
