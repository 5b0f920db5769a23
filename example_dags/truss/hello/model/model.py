"""A tiny Truss model: says hello to the name it is given."""


class Model:
    def __init__(self, **kwargs):
        pass

    def load(self):
        pass

    def predict(self, model_input):
        return {"greeting": f"Hello, {model_input.get('name', 'world')}!"}
