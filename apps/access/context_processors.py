"""What every page's navigation needs to know about the viewer."""

from apps.content.selectors import user_is_creator


def viewer(request) -> dict:
    user = getattr(request, "user", None)
    return {"is_creator": bool(user is not None and user_is_creator(user))}
