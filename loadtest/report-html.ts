export function renderHtmlReport(r: unknown): string { return JSON.stringify(r) }
