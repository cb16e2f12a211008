/** The config module's public surface: one schema, one loader, the provider presets. */
export {
  checkConfigObject,
  findConfig,
  type LoadedSettings,
  type LoadInput,
  loadSettings,
  loadStoreSetting,
  parseSetting,
  SEARCH_PLACES,
  type SourceKind,
  type StoreSetting,
  type ValueSource,
} from './load.ts';
export {
  apiKeyVars,
  needsApiKey,
  PRESETS,
  PROVIDERS,
  type PresetInfo,
  type ProviderPreset,
  suggestedKeyVar,
} from './presets.ts';
export {
  type ConfigValues,
  configSchema,
  costOf,
  DEFAULT_PRICES,
  describeKeys,
  formatMs,
  type Price,
  type Settings,
  settingDefault,
  settingValue,
} from './schema.ts';
export {
  ENV_VARS,
  flagName,
  SETTINGS,
  type SettingPath,
  type SettingSpec,
} from './settings-table.ts';
export { describeSource, displayPath } from './sources.ts';
