"""Settings: one YAML file per job, checked whole at load (docs/CONTRACT.md, "Settings").

Why pydantic-settings: the settings are pydantic models already, and pydantic-settings is the
library, maintained with pydantic, that stacks *sources* (a file, the environment) under such a
model in a stated order and validates the merged values once, so that every error comes out of
one validation. The hand-written loader it replaces ran a regex over the YAML text, which let an
environment value inject keys. Its own sources do not fit as they are: its YAML source keeps the
last of two duplicate keys silently and knows no `${VAR}`, and its environment source maps every
field to a variable; so both sources here are small subclasses of its source classes.

How the sources stack, highest first (`JobSettings.settings_customise_sources`):

1. `EnvironmentSource`: these variables, and only these:

   =========================================================  ==================================
   `KAFKA_BROKERS`, else `KAFKA_BROKER_1..N` joined by commas  `kafka.brokers`
   `KAFKA_SASL_PASSWORD`                                       `kafka.security.password`
   `INFLUXDB_TOKEN`, else `INFLUXDB_PASSWORD` (ETL)            `influxdb.password`
   `REDIS_PASSWORD` (strategy `state_store`)                   `latest_merger.state_store.password`
   =========================================================  ==================================

   Secrets come from here only (as `SecretStr`); a secret key in the file is an error.
2. `YamlSource`: the job's file, parsed strictly (a duplicate key is an error with its path and
   line), then `${VAR}` and `${VAR:default}` replaced inside string values. The replacement
   comes after parsing, so a value from the environment is always one scalar (it cannot add
   keys) and a `${X}` in a comment is never seen.
3. The models' defaults.

Sources merge section by section: `KAFKA_BROKERS` replaces `kafka.brokers` and keeps the file's
other `kafka` keys. Both sources read the `environ` mapping given to `load_settings` (the entry
points pass `os.environ`, tests their own), nowhere else. The merged values are validated once;
the rules across keys are model validators (`CheckedSection`), and `ConfigError` lists every
problem of every stage, each with its key path and, when known, its line.

pydantic-settings' hook is a classmethod, so the file and the environment of one load reach the
sources through a context variable, set while `load_settings` or `parse_settings` builds the
model. A job model built any other way (`EtlSettings(...)`, `model_validate`) reads nothing but
its input: its only source is then its arguments.

The modules: `kafka_security` (`kafka.security` and its adapters to the Java client's and
librdkafka's properties), `models` (the sections and the jobs' settings, with their rules; the
`latest_merger` section is the model of the strategy it names in `bethos.strategy_registry`,
each strategy's own settings and rules are in `bethos/strategies`, imported only when a file
names it), `sources` (the YAML file and the
environment, and the load they read), `loading` (`read_yaml`, `load_settings`,
`parse_settings`, and the errors turned into `ConfigError` problems). Import from here.
"""

from bethos.config.kafka_security import ClientProperties as ClientProperties
from bethos.config.kafka_security import KafkaSecurity as KafkaSecurity
from bethos.config.loading import load_settings as load_settings
from bethos.config.loading import parse_settings as parse_settings
from bethos.config.loading import read_yaml as read_yaml
from bethos.config.models import DEFAULT_BROKERS as DEFAULT_BROKERS
from bethos.config.models import MIN_CHECKPOINT_INTERVAL_MS as MIN_CHECKPOINT_INTERVAL_MS
from bethos.config.models import EtlSettings as EtlSettings
from bethos.config.models import FlinkSettings as FlinkSettings
from bethos.config.models import InfluxSettings as InfluxSettings
from bethos.config.models import JobSettings as JobSettings
from bethos.config.models import KafkaSettings as KafkaSettings
from bethos.config.models import LimitSettings as LimitSettings
from bethos.config.models import MergerOptions as MergerOptions
from bethos.config.models import MergerSettings as MergerSettings
from bethos.config.models import TopicName as TopicName
from bethos.config.models import TopicSettings as TopicSettings
from bethos.config.models import is_topic_name as is_topic_name
from bethos.config.sources import EnvironmentSource as EnvironmentSource
from bethos.config.sources import KeyPath as KeyPath
from bethos.config.sources import YamlDocument as YamlDocument
from bethos.config.sources import YamlSource as YamlSource
from bethos.config.sources import brokers_from_env as brokers_from_env
from bethos.config.sources import expand_env as expand_env
from bethos.urls import MASK as MASK
from bethos.urls import mask_url as mask_url
