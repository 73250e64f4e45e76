# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name/description templates and tag checks, shared by every module that writes tags.

Templates use Python ``str.format`` syntax over a fixed set of variables (``ALL_VARIABLES``):
``policy, volume_id, volume_name, instance_id, instance_name, device, image_id, image_name,
snapshot_id, index, date, timestamp``.

* ``index`` is an integer (e.g. the 1-based EBS mapping number of an image) and takes integer format
  specs: ``{index:03d}`` -> ``001``. Every other variable is a string and takes string specs
  (``{volume_name:.20}``, ``{device:>10}``).
* ``date`` is the UTC date ``YYYY-MM-DD``; ``timestamp`` is the compact UTC ISO 8601 basic form
  ``YYYYMMDDTHHMMSSZ`` (``20240131T020000Z``: sortable, no ``:``). ``time_variables(now)`` makes both.
* Only plain names are allowed: no positional fields (``{}``, ``{0}``), no attribute or index access
  (``{a.b}``, ``{a[0]}``), no conversions (``!r``, ``!s``, ``!a``), no nested fields in format specs.
  Literal braces are written ``{{`` and ``}}``.
* ``validate_template`` checks all of this (including the format specs, by a trial render) without any
  value; modules call it at argument time, before any AWS call.
* ``min_length`` is the fewest characters a template can render to (its literal text plus the minimum
  widths of its format specs); ``check_template_length`` rejects a template that cannot fit in a tag
  value whatever the variables hold, so that error is reported before any AWS call.
* ``render`` fills a validated template. A variable whose value is missing or ``None`` renders as an
  empty string, and its format spec is then ignored (``"{volume_name} Snap"`` on an unnamed volume gives
  ``" Snap"``): the rendered value is what the user can see and fix, where a failure halfway through a
  fleet would not be.

Tag checks follow EC2's limits: keys 1..128 characters, values 0..256 characters, at most 50 tags per
resource, and keys starting with ``aws:`` (any case) are reserved for AWS (values are not restricted).
"""
from __future__ import annotations

import re
import string
from datetime import datetime, timezone

ALL_VARIABLES = (
    "policy",
    "volume_id",
    "volume_name",
    "instance_id",
    "instance_name",
    "device",
    "image_id",
    "image_name",
    "snapshot_id",
    "index",
    "date",
    "timestamp",
)
INTEGER_VARIABLES = frozenset(("index",))

MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_TAGS_PER_RESOURCE = 50
RESERVED_PREFIX = "aws:"

_FORMATTER = string.Formatter()
_NUMBER_RE = re.compile(r"[0-9]+")


class TemplateError(ValueError):
    """A bad template, tag key or tag value; the message names the option when one is given."""


def _prefix(option_name):
    return "%s: " % option_name if option_name else ""


def _parse(template, option_name):
    if not isinstance(template, str):
        raise TemplateError("%stemplate must be a string, got %r" % (_prefix(option_name), template))
    try:
        return list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(
            "%smalformed template %r: %s (write literal braces as '{{' and '}}')" % (_prefix(option_name), template, exc)
        ) from exc


def _check_field(template, field_name, format_spec, conversion, allowed, option_name):
    where = "%sin template %r" % (_prefix(option_name), template)
    if field_name == "" or field_name.isdigit():
        raise TemplateError("%s: positional field '{%s}' is not allowed; use a variable name such as {volume_id}" % (where, field_name))
    if "." in field_name or "[" in field_name:
        raise TemplateError("%s: attribute or index access '{%s}' is not allowed; use a plain variable name" % (where, field_name))
    if conversion is not None:
        raise TemplateError("%s: conversion '!%s' on '%s' is not allowed" % (where, conversion, field_name))
    if format_spec and ("{" in format_spec or "}" in format_spec):
        raise TemplateError("%s: nested field in format spec '%s' of '%s' is not allowed" % (where, format_spec, field_name))
    if any(int(number) > MAX_TAG_VALUE_LENGTH for number in _NUMBER_RE.findall(format_spec or "")):
        raise TemplateError("%s: format spec '%s' of '%s' asks for more than %d characters" % (where, format_spec, field_name, MAX_TAG_VALUE_LENGTH))
    if field_name not in allowed:
        raise TemplateError(
            "%sunknown variable '%s' in template %r; allowed: %s" % (_prefix(option_name), field_name, template, ", ".join(allowed))
        )


def _format_value(template, field_name, format_spec, value, option_name):
    try:
        return format(value, format_spec or "")
    except (ValueError, TypeError) as exc:
        raise TemplateError(
            "%sin template %r: format spec ':%s' does not apply to %s '%s' (%s)"
            % (_prefix(option_name), template, format_spec, "integer" if field_name in INTEGER_VARIABLES else "string", field_name, exc)
        ) from exc


def validate_template(template, allowed=ALL_VARIABLES, option_name=None):
    """Raise ``TemplateError`` unless ``template`` only uses plain variables from ``allowed``.

    Checks brace syntax, field names (unknown names are reported with the allowed list), forbidden
    forms (positional, ``{a.b}``, ``{a[0]}``, ``!r``, nested specs) and that each format spec suits its
    variable's type. ``option_name`` (e.g. ``"name_template"``) prefixes the message.
    """
    allowed = tuple(allowed)
    for dummy_literal, field_name, format_spec, conversion in _parse(template, option_name):
        if field_name is None:
            continue
        _check_field(template, field_name, format_spec, conversion, allowed, option_name)
        sample = 1 if field_name in INTEGER_VARIABLES else "x"
        _format_value(template, field_name, format_spec, sample, option_name)


def render(template, variables, allowed=ALL_VARIABLES, option_name=None):
    """Validate ``template`` then fill it from ``variables`` (a dict; extra keys are ignored).

    Missing or ``None`` values render as ``""`` (their format spec is ignored).
    """
    validate_template(template, allowed, option_name)
    parts = []
    for literal, field_name, format_spec, dummy_conversion in _parse(template, option_name):
        parts.append(literal)
        if field_name is None:
            continue
        value = variables.get(field_name)
        if value is None:
            continue
        parts.append(_format_value(template, field_name, format_spec, value, option_name))
    return "".join(parts)


def min_length(template, allowed=ALL_VARIABLES, option_name=None):
    """The fewest characters ``template`` can render to: its literal text plus each field's minimum width.

    Each field is formatted with the smallest value of its type (``""`` or ``0``), so ``{device:>20}``
    counts 20 and ``{index:03d}`` counts 3; a plain ``{image_name}`` counts 0.
    """
    validate_template(template, allowed, option_name)
    total = 0
    for literal, field_name, format_spec, dummy_conversion in _parse(template, option_name):
        total += len(literal)
        if field_name is not None:
            smallest = 0 if field_name in INTEGER_VARIABLES else ""
            total += len(_format_value(template, field_name, format_spec, smallest, option_name))
    return total


def check_template_length(template, allowed=ALL_VARIABLES, option_name=None, limit=MAX_TAG_VALUE_LENGTH):
    """Raise ``TemplateError`` when ``template`` renders more than ``limit`` characters whatever its values.

    Validates the template first (see ``validate_template``); returns the minimum length.
    """
    length = min_length(template, allowed, option_name)
    if length > limit:
        raise TemplateError(
            "%stemplate %r renders at least %d characters (its fixed text and widths); EC2 tag values allow at most %d"
            % (_prefix(option_name), template[:40] + "..." if len(template) > 40 else template, length, limit)
        )
    return length


def time_variables(now):
    """``date`` (``YYYY-MM-DD``) and ``timestamp`` (``YYYYMMDDTHHMMSSZ``) of an aware datetime, in UTC."""
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise TemplateError("now must be a timezone-aware datetime, got %r" % (now,))
    utc = now.astimezone(timezone.utc)
    return {"date": utc.strftime("%Y-%m-%d"), "timestamp": utc.strftime("%Y%m%dT%H%M%SZ")}


def check_tag_key(key, option_name):
    """Return ``key`` if it is a valid EC2 tag key, else raise ``TemplateError`` naming ``option_name``."""
    if not isinstance(key, str) or not key:
        raise TemplateError("%s: tag keys must be non-empty strings, got %r" % (option_name, key))
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise TemplateError(
            "%s: tag key %r is %d characters long; EC2 allows at most %d" % (option_name, key[:40] + "...", len(key), MAX_TAG_KEY_LENGTH)
        )
    if key.lower().startswith(RESERVED_PREFIX):
        raise TemplateError("%s: tag key %r uses the reserved prefix 'aws:'" % (option_name, key))
    return key


def check_tag_value(value, option_name):
    """Return ``value`` if it is a valid EC2 tag value (a string of at most 256 characters)."""
    if not isinstance(value, str):
        raise TemplateError("%s: tag values must be strings, got %r" % (option_name, value))
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise TemplateError(
            "%s: value %r is %d characters long; EC2 tag values allow at most %d"
            % (option_name, value[:40] + "...", len(value), MAX_TAG_VALUE_LENGTH)
        )
    return value


def check_tags(tags, option_name, max_tags=MAX_TAGS_PER_RESOURCE):
    """Check every key and value of ``tags`` (and their number); return them as a new dict."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise TemplateError("%s must be a dictionary of tags, got %r" % (option_name, tags))
    for key, value in tags.items():
        check_tag_key(key, option_name)
        check_tag_value(value, "%s.%s" % (option_name, key))
    if max_tags is not None and len(tags) > max_tags:
        raise TemplateError("%s: %d tags; EC2 allows at most %d per resource" % (option_name, len(tags), max_tags))
    return dict(tags)


def drop_aws_tags(tags):
    """A copy of ``tags`` without keys starting with ``aws:`` (any case), which cannot be copied."""
    return {key: value for key, value in (tags or {}).items() if not str(key).lower().startswith(RESERVED_PREFIX)}


def merge_tags(*dicts):
    """Merge tag dicts left to right (later wins); ``None`` arguments are skipped."""
    merged = {}
    for tags in dicts:
        if tags:
            merged.update(tags)
    return merged
