"""What every settings section shares: frozen, no unknown keys, durations in milliseconds; and
`CheckedSection`, a section with rules across its keys.

Rules across keys are model validators. Pydantic runs an ordinary model validator only when
every key of the section is valid, so one bad key would hide every broken rule. A checked
section runs its rules in either case; when some keys failed, each rule runs on the keys that
are valid, and a rule that reads a failed key is skipped. So a file's problems are reported all
at once: the keys' own errors and the broken rules, each at its key path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, NamedTuple, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ModelWrapValidatorHandler,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    WrapSerializer,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from bethos.durations import format_duration_ms, parse_duration_ms
from bethos.exceptions import ConfigError

RULE_ERROR = "config_rule"
"""The pydantic error type of a broken rule."""

DURATIONS_AS_TEXT = {"durations": "text"}
"""Serialization context that writes durations as text (`2m`) instead of milliseconds."""


def _duration(value: str | int) -> int:
    try:
        return parse_duration_ms(value)
    except ConfigError as exc:  # pydantic reports ValueErrors with the key's location
        raise ValueError(str(exc)) from None


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _serialize_duration(
    value: int, handler: SerializerFunctionWrapHandler, info: SerializationInfo
) -> Any:
    context = info.context
    if isinstance(context, Mapping) and context.get("durations") == "text":
        return format_duration_ms(value)
    return handler(value)


_AS_TEXT = WrapSerializer(_serialize_duration)
DurationMs = Annotated[int, BeforeValidator(_duration), _AS_TEXT]
"""A duration (`500ms`, `10s`, `2m`, or bare milliseconds), zero or more."""
PositiveDurationMs = Annotated[int, BeforeValidator(_duration), AfterValidator(_positive), _AS_TEXT]
"""A duration that must be more than zero (an interval, a period, a timeout)."""


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Loc = tuple[str | int, ...]


class Broken(NamedTuple):
    """A rule that a section breaks: the key path inside the section, and why."""

    loc: Loc
    message: str


Rule = Callable[[Any], Iterable[Broken]]


class CheckedSection(Section):
    """A section with rules across its keys: `rules` lists methods that yield what is broken.

    A rule may read any key; when some keys failed validation, a rule reading one of them is
    skipped (the failed key is absent from the section it is given), the others still run.
    """

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="wrap")
    @classmethod
    def _check_rules(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            section = handler(data)
        except ValidationError as exc:
            if not cls.rules or not isinstance(data, Mapping):
                raise
            errors = exc.errors()
            partial = _partial(cls, data, [err["loc"] for err in errors])
            broken = _run(cls.rules, partial, skip=AttributeError)
            if not broken:
                raise
            raise _validation_error(cls.__name__, [*map(_again, errors), *broken]) from None
        broken = _run(cls.rules, section)
        if broken:
            raise _validation_error(cls.__name__, broken)
        return section


class _Never(Exception):
    """Nothing raises it: on a valid section no exception skips a rule."""


def _run(
    rules: Iterable[Rule], section: CheckedSection, skip: type[Exception] = _Never
) -> list[InitErrorDetails]:
    found: list[InitErrorDetails] = []
    for rule in rules:
        try:
            found.extend(
                InitErrorDetails(
                    type=PydanticCustomError(RULE_ERROR, "{message}", {"message": b.message}),
                    loc=b.loc,
                    input=None,
                )
                for b in rule(section)
            )
        except skip:
            continue
    return found


def _partial(model: type[BaseModel], data: Mapping[str, Any], errors: list[Loc]) -> Any:
    """The section built from its valid keys only: a key that failed is absent (reading it
    raises AttributeError), and a nested section whose keys failed is itself partial."""
    values: dict[str, Any] = {}
    absent: list[str] = []
    for name, info in model.model_fields.items():
        inner = [loc[1:] for loc in errors if loc and loc[0] == name]
        if not inner:
            try:
                values[name] = (
                    _adapter(model, name).validate_python(data[name])
                    if name in data
                    else info.get_default(call_default_factory=True)
                )
            except ValidationError:
                absent.append(name)
            continue
        value = data.get(name)
        nested = _nested_model(info, inner, value)
        if nested is None or not isinstance(value, Mapping) or not all(nested[1]):
            absent.append(name)
            continue
        values[name] = _partial(nested[0], value, nested[1])
    section = model.model_construct(**values)
    for name in absent:
        section.__dict__.pop(name, None)
    return section


def _nested_model(
    info: FieldInfo, errors: list[Loc], value: Any
) -> tuple[type[BaseModel], list[Loc]] | None:
    """The model of a field and the errors inside it; for a field holding one of several
    sections (`OneOf`), the one its value names."""
    model = section_held(info, value)
    return None if model is None else (model, errors)


def field_model(info: FieldInfo) -> type[BaseModel] | None:
    """The section a field holds (`X` or `X | None`); None for anything else."""
    members = [info.annotation, *get_args(info.annotation)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    return models[0] if len(models) == 1 else None


def section_held(info: FieldInfo, value: Any) -> type[BaseModel] | None:
    """The section a field holds for `value`: the one it names for a field holding one of
    several (`OneOf`), else the field's own (`field_model`)."""
    choice = one_of(info)
    return choice.member_for(value) if choice is not None else field_model(info)


def model_at(model: type[BaseModel], loc: Loc, data: Any = None) -> type[BaseModel] | None:
    """The section at a key path; `data`, the values it was validated from, tells which section
    a field holding one of several (`OneOf`) holds."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        data = data.get(str(part)) if isinstance(data, Mapping) else None
        current = section_held(info, data)
    return current


# -- one of several sections ---------------------------------------------------------------------

UNKNOWN_SECTION = "unknown_section"
"""The pydantic error type of a section that names no known kind (`OneOf.key`)."""


@dataclass(frozen=True)
class OneOf:
    """A field that holds one of several sections, told apart by their key `key` (`default`
    when a section names none): `member(name)` is the model of a name, None for an unknown one,
    and `names()` lists the known ones. The section is validated by the model its name picks,
    so its errors are at its own key paths; an unknown name is an `UNKNOWN_SECTION` error.
    The field's annotation: `Annotated[SerializeAsAny[Base], BeforeValidator(choice.validate),
    choice]`, `Base` being what every member extends (so that it dumps as its member)."""

    key: str
    default: str
    member: Callable[[str], type[BaseModel] | None]
    names: Callable[[], Iterable[str]]

    def member_for(self, value: Any) -> type[BaseModel] | None:
        name = value.get(self.key, self.default) if isinstance(value, Mapping) else self.default
        return self.member(name) if isinstance(name, str) else None

    def validate(self, value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value  # a section built in code
        if not isinstance(value, Mapping):
            raise PydanticCustomError(
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
            )
        name = value.get(self.key, self.default)
        model = self.member(name) if isinstance(name, str) else None
        if model is None:
            valid = ", ".join(map(repr, self.names()))
            raise PydanticCustomError(
                UNKNOWN_SECTION,
                "{message}",
                {"message": f"unknown {self.key} {name!r}; valid: {valid}", "key": self.key},
            )
        return model.model_validate({**value, self.key: name})


def one_of(info: FieldInfo) -> OneOf | None:
    return next((m for m in info.metadata if isinstance(m, OneOf)), None)


@cache
def _adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(cls.model_fields[name].rebuild_annotation())


def _again(error: Any) -> InitErrorDetails:
    """An error of the failed validation, raised again next to the broken rules."""
    template = PydanticCustomError(error["type"], "{message}", {"message": error["msg"]})
    return InitErrorDetails(type=template, loc=error["loc"], input=error["input"])


def _validation_error(title: str, errors: list[InitErrorDetails]) -> ValidationError:
    return ValidationError.from_exception_data(title, errors)
