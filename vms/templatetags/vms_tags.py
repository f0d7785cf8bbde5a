"""The volume page's "Attach to a VM" form, given by the vms app to a template of the volumes app below it."""

from __future__ import annotations

from django import template

from accounts import access

from ..forms import AttachToVmForm

register = template.Library()


@register.simple_tag(takes_context=True)
def attach_to_vm_form(context, volume) -> AttachToVmForm | None:
    """The form when the user may create volumes in the volume's pool and change a VM of its host; else None."""
    user = context.get("user")
    if user is None or not access.may(user, "create", volume.pool):
        return None
    form = AttachToVmForm(volume=volume, user=user, auto_id="id_attach_%s")
    return form if form.fields["vm"].queryset.exists() else None
