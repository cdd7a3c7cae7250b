# minios-lab in a container: JupyterLab on the notebooks, for a laptop with
# Docker or Podman, a JupyterHub (single-user image) or Binder.
#
#   docker build -t minios-lab .                 the image (stage "lab")
#   docker build --target test .                 the image, then `make test`
#   docker run -p 8888:8888 minios-lab           JupyterLab, token printed
#
# Everything is installed at build time: the Debian packages (as root, by
# the kit's own `python3 -m minios_lab.build.sysdeps`), then, as the user jovyan
# (uid 1000), the kit's .venv and the Xen hypervisor and headers fetched
# into the image's cache. Nothing needs root at run time. The layout
# follows repo2docker's rules for a root Dockerfile (NB_USER, NB_UID,
# HOME, the repository in $HOME, port 8888) so Binder can build it, and
# jupyterhub-singleuser is in the image for a JupyterHub.

FROM debian:bookworm AS lab

ARG NB_USER=jovyan
ARG NB_UID=1000
ARG JUPYTERHUB_VERSION=5.*
ENV USER=${NB_USER} \
    NB_UID=${NB_UID} \
    HOME=/home/${NB_USER} \
    LANG=C.UTF-8 \
    MINIOS_LAB_CACHE=/opt/minios-lab/cache \
    PYTHONDONTWRITEBYTECODE=1
ENV PATH=${HOME}/.venv/bin:${PATH}

# What the README asks of a machine before the two commands: git, make,
# python3. The rest comes from the kit's own list of system packages.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends git make python3 ca-certificates \
 && useradd --create-home --uid ${NB_UID} --shell /bin/bash ${NB_USER} \
 && mkdir -p ${MINIOS_LAB_CACHE} \
 && chown -R ${NB_UID}:${NB_UID} /opt/minios-lab

COPY --chown=${NB_UID}:${NB_UID} . ${HOME}
WORKDIR ${HOME}
RUN python3 -m minios_lab.build.sysdeps

# The rest as the learner: `make setup` makes .venv, fetches Xen and its
# headers and the domU's dom0, and builds the guest image and the host units
# once, so the first notebook starts warm.
USER ${NB_USER}
RUN make setup \
 && .venv/bin/pip install --quiet "jupyterhub==${JUPYTERHUB_VERSION}"

EXPOSE 8888
# JupyterLab on every interface of the container, Jupyter's token on
# (printed in the log). JupyterHub and Binder start their own command.
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", \
     "--ServerApp.root_dir=notebooks", \
     "--LabApp.default_url=/lab/tree/00-welcome.ipynb"]

# Building this stage is the test of the image: every test, as jovyan.
FROM lab AS test
RUN make test

# The default target is the image itself.
FROM lab
