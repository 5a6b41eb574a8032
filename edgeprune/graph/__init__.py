"""Graph analysis: the channel groups that must be removed together."""

from .groups import Analysis, analyze
from .types import Group, Member

__all__ = ["Analysis", "Group", "Member", "analyze"]
