from setuptools import find_packages, setup

if __name__ == '__main__':
    setup(packages=find_packages(include=['projects', 'projects.*']))
