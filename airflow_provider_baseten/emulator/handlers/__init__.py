"""The emulated API's endpoint handlers, one mixin of :class:`~..core.StateCore` per part of the API."""
